"""One generator step and one discriminator step (PATN ``models/PATN.py`` order), the loss terms defined once.

    G step   fake = G(P_c, S_c, S_t)
             L_G = λ1·L1(fake, P_t) + λ2·perceptual(fake, P_t) [+ style] + α·adversarial_G(D_i(fake ‖ cond_i))
                   [+ sampling correctness / flow regularisation for flow models]
    D step   L_D = α·adversarial_D(D_i(P_t ‖ cond_i), D_i(pool_i(fake ‖ cond_i)))

The first stage of the flow models (``train.stage: flow``) runs the same G step on ``G.predict_flows`` with
the flow terms only, and no D step. The trainer (:mod:`posetransfer.train`) and the benchmark's training
step (:func:`posetransfer.bench.make_train_step`) both run these two functions.

Every step checks before it writes: a non-finite loss stops before the backward pass, a non-finite gradient
before the optimiser step (under AMP the GradScaler skips such steps instead), each with a
:class:`TrainingError` naming the step and the last good checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .. import distributed as D
from ..errors import TrainingError
from ..losses import ImagePool, discriminator_adversarial, generator_adversarial, l1
from ..models.base import GeneratorOutput


def learning_rate(step: int, optim: dict[str, Any]) -> float:
    """Constant, then linear to 0: lr · (1 − max(0, step − decay_start) / (iterations − decay_start))."""
    lr, start, total = optim["lr"], optim["decay_start"], optim["iterations"]
    if total <= start or step < start:
        return lr
    return lr * max(0.0, 1.0 - (step - start) / (total - start))


@dataclass
class Discriminators:
    """The discriminators by name, what each sees besides the judged image, and whether it returns logits."""

    modules: dict[str, nn.Module]
    inputs: dict[str, list[str]]
    logits: list[bool]

    def judge(self, image: torch.Tensor, batch: dict[str, Any], models: dict[str, nn.Module] | None = None
              ) -> list[torch.Tensor]:
        """Scores of ``image`` by every discriminator (``models``: e.g. their DDP wrappers; default the bare ones)."""
        models = models or self.modules
        return [models[name](cat_inputs(self.inputs[name], image, batch)) for name in self.modules]


@dataclass
class GeneratorLoss:
    """Every generator loss term, each defined once. ``image_terms`` False (the flow stage): only the flow
    terms (sampling correctness, affine regularisation), on ``G.predict_flows``' output."""

    weights: dict[str, Any]          # the config's ``loss`` section
    image_terms: bool
    vgg: nn.Module | None = None     # features for perceptual / style
    perceptual: nn.Module | None = None
    style: nn.Module | None = None
    vgg_flow: nn.Module | None = None  # features for sampling correctness
    discriminators: Discriminators | None = None

    def __call__(self, out: GeneratorOutput, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        w, fake, tgt = self.weights, out.image, batch["target_image"]
        terms: dict[str, torch.Tensor] = {}
        if self.image_terms:
            if w["l1"] > 0:
                terms["l1"] = w["l1"] * l1(fake, tgt)
            if self.vgg is not None:
                fake_features = self.vgg(fake)
                with torch.no_grad():
                    real_features = self.vgg(tgt)
                if self.perceptual is not None:
                    terms["perceptual"] = w["perceptual"] * self.perceptual(fake, tgt, real_features, fake_features)
                if self.style is not None:
                    terms["style"] = w["style"] * self.style(fake, tgt, real_features, fake_features)
            if self.discriminators is not None and self.discriminators.modules:
                terms["gan"] = w["gan"] * generator_adversarial(self.discriminators.judge(fake, batch),
                                                                w["gan_mode"], w["gan_form"],
                                                                self.discriminators.logits)
        if w["correctness"] > 0 or w["regularization"] > 0:
            from ..models import flow_losses
        if w["correctness"] > 0:
            terms["correctness"] = w["correctness"] * flow_losses.sampling_correctness_loss(
                self.vgg_flow, batch["source_image"], tgt, out)
        if w["regularization"] > 0 and (out.flows or not self.image_terms):
            terms["regularization"] = w["regularization"] * flow_losses.affine_regularization_loss(out)
        return terms


@dataclass
class TrainStep:
    """What one G step and one D step touch: the models (as trained: DDP-wrapped, compiled, the flow-stage
    adapter), the loss, the optimisers ``G`` / ``D.<name>``, the GradScalers ``G`` / ``D``, the image pools."""

    generator: nn.Module                 # called as generator(src, src_maps, tgt_maps, return_extras=...)
    generator_params: list[torch.Tensor]
    loss: GeneratorLoss
    discriminators: Discriminators
    discriminators_trained: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, Any]
    pools: dict[str, ImagePool]
    grad_clip: float | None
    amp: bool
    info: D.DistInfo

    def autocast(self):
        return torch.autocast(device_type=self.info.device.type, dtype=torch.float16, enabled=self.amp)

    def set_lr(self, lr: float, d_lr_ratio: float) -> None:
        _set_lr(self.optimizers["G"], lr)
        for name in self.discriminators.modules:
            _set_lr(self.optimizers[f"D.{name}"], lr * d_lr_ratio)


def generator_step(ts: TrainStep, batch: dict[str, Any], step: int, extras: bool,
                   last_checkpoint=None) -> tuple[GeneratorOutput, dict[str, torch.Tensor]]:
    """Forward G, its loss terms, backward, one optimiser step; returns G's output and the terms. ``step``:
    the step's number in error messages; ``extras``: ask G for its attention maps."""
    for d in ts.discriminators.modules.values():
        d.requires_grad_(False)
    with ts.autocast():
        out = ts.generator(batch["source_image"], batch["source_heatmaps"], batch["target_heatmaps"],
                           return_extras=extras)
        if isinstance(out, torch.Tensor):
            out = GeneratorOutput(image=out)
        losses = ts.loss(out, batch)
        total = sum(losses.values())
    _check_finite(losses, step, ts.info, last_checkpoint)
    optimizer, scaler = ts.optimizers["G"], ts.scalers["G"]
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    norm = _clip(scaler, optimizer, ts.generator_params, ts.grad_clip)
    _check_gradient(norm, "generator", step, ts.info, last_checkpoint)
    scaler.step(optimizer)
    scaler.update()
    return out, losses


def discriminator_step(ts: TrainStep, batch: dict[str, Any], fake: torch.Tensor, step: int,
                       last_checkpoint=None) -> dict[str, torch.Tensor]:
    """All discriminators at once on the real target and the pooled detached fake; each gets only its own
    terms' gradient. Returns ``{"D": loss}``, or nothing without discriminators."""
    discs, w = ts.discriminators, ts.loss.weights
    if not discs.modules:
        return {}
    for d in discs.modules.values():
        d.requires_grad_(True)
    fake_d = fake.detach()
    with ts.autocast():
        real_scores, fake_scores = [], []
        for name in discs.modules:
            real_scores.append(ts.discriminators_trained[name](cat_inputs(discs.inputs[name], batch["target_image"],
                                                                          batch)))
            fake_in = ts.pools[name].query(cat_inputs(discs.inputs[name], fake_d, batch))
            fake_scores.append(ts.discriminators_trained[name](fake_in))
        losses = {"D": w["gan"] * discriminator_adversarial(real_scores, fake_scores, w["gan_mode"], w["gan_form"],
                                                            discs.logits)}
    _check_finite(losses, step, ts.info, last_checkpoint)
    for name in discs.modules:
        ts.optimizers[f"D.{name}"].zero_grad(set_to_none=True)
    ts.scalers["D"].scale(losses["D"]).backward()
    for name, d in discs.modules.items():
        norm = _clip(ts.scalers["D"], ts.optimizers[f"D.{name}"], list(d.parameters()), ts.grad_clip)
        _check_gradient(norm, f"discriminator {name!r}", step, ts.info, last_checkpoint)
    for name in discs.modules:
        ts.scalers["D"].step(ts.optimizers[f"D.{name}"])
    ts.scalers["D"].update()
    return losses


def cat_inputs(inputs: Sequence[str], image: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """A discriminator's input: the judged image concatenated with its conditioning tensors."""
    return torch.cat([image if name == "image" else batch[name].to(image.dtype) for name in inputs], 1)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _clip(scaler, optimizer, params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor | None:
    """Clip to ``max_norm`` (if set); return the total gradient norm to check, or None under AMP, where the
    GradScaler itself skips the steps whose gradients overflowed."""
    if scaler.is_enabled():
        if max_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        return None
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def _where(last_checkpoint) -> str:
    return "last good checkpoint: " + (str(last_checkpoint) if last_checkpoint else "none (no checkpoint yet)")


def _check_gradient(norm: torch.Tensor | None, which: str, step: int, info: D.DistInfo, last_checkpoint) -> None:
    """A finite loss can still have a NaN/inf gradient; stop before the optimizer writes it into the weights
    (under AMP the GradScaler skips such steps instead)."""
    if norm is None:
        return
    bad_here = not bool(torch.isfinite(norm))
    if not D.any_flag(bad_here, info):
        return
    raise TrainingError(f"step {step}: non-finite gradient in the {which} update (loss was finite); "
                        f"training stopped, {_where(last_checkpoint)}")


def _check_finite(losses: dict[str, torch.Tensor], step: int, info: D.DistInfo, last_checkpoint) -> None:
    """Stop on NaN/inf before the backward pass: the weights and the last checkpoint stay good."""
    values = torch.stack([v.detach().float() for v in losses.values()])
    bad_here = not bool(torch.isfinite(values).all())
    if not D.any_flag(bad_here, info):
        return
    if bad_here:
        name, value = next((k, float(v.detach())) for k, v in losses.items() if not math.isfinite(float(v.detach())))
        raise TrainingError(f"step {step}: loss {name!r} is {value} (non-finite); training stopped, "
                            f"{_where(last_checkpoint)}")
    raise TrainingError(f"step {step}: a non-finite loss on another process; training stopped, "
                        f"{_where(last_checkpoint)}")


def check_weights(models: Sequence[nn.Module], optimizers: dict[str, torch.optim.Optimizer], step: int,
                  info: D.DistInfo, last_checkpoint) -> None:
    """Before a checkpoint is committed: every weight, buffer and optimizer moment is finite. A finite loss and
    gradient can still give a non-finite update (an extreme learning rate); such a checkpoint would be cited
    as the last good one."""
    bad = None
    for model in models:
        for name, value in [*model.named_parameters(), *model.named_buffers()]:
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad = f"{getattr(model, 'arch', type(model).__name__)} {name}"
                break
        if bad:
            break
    for opt_name, optimizer in optimizers.items():
        for state in ([] if bad else optimizer.state.values()):
            if any(torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())
                   for v in state.values()):
                bad = f"optimizer {opt_name} state"
                break
    if not D.any_flag(bad is not None, info):
        return
    what = f"{bad} holds non-finite values" if bad else "non-finite weights on another process"
    raise TrainingError(f"step {step}: {what} after the update; no checkpoint written, training stopped, "
                        f"{_where(last_checkpoint)}")
