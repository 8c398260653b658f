"""Training losses: adversarial (paper product form and the official code's variants), L1, perceptual, style.

Adversarial loss, two conditional discriminators D_A (appearance: image ‖ source image) and D_S (shape:
image ‖ target heatmaps). The papers (PATN CVPR'19 eq. 5, PoNA eq. 9) write

    L_GAN = E[ log(D_A(real) · D_S(real)) ] + E[ log((1 - D_A(fake)) · (1 - D_S(fake))) ]

so the log of the product is the sum of the two discriminators' log-likelihood terms. ``form="product"``
implements exactly that: the D loss is −L_GAN, i.e. Σ_d [BCE(D_d(real), 1) + BCE(D_d(fake), 0)], and the G loss
is the usual non-saturating −E[log(D_A(fake) · D_S(fake))] = Σ_d BCE(D_d(fake), 1). Each "D(x)" is a score *map*
(the official D outputs a 256-channel feature map), and the expectation is the mean over its elements; when the
two maps have the same shape this equals the element-wise log of the product (tested).

``form="average"`` is the official code (tengteng95/Pose-Transfer ``models/PATN.py``): G term
``(GAN(D_S(fake), 1) + GAN(D_A(fake), 1)) / 2`` and, per discriminator, ``0.5 · (GAN(real, 1) + GAN(fake, 0))``.

``mode="bce"`` is the vanilla GAN (the official ``--no_lsgan``, Market); ``mode="lsgan"`` the least-squares GAN
(official default, used by its DeepFashion command): MSE against 1 / 0. With LSGAN there is no log, so "product"
means the plain sum of the two discriminators' terms. For BCE, a discriminator ending in a sigmoid passes
``logits=False``; without the sigmoid (our presets) the same loss is computed from logits, which is stabler.

The weight α (``loss.gan``) is applied by the trainer, to the G and the D loss alike (as the official code).
"""
from __future__ import annotations

import random
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("bce", "lsgan")
GAN_FORMS = ("product", "average")


def gan_term(score: torch.Tensor, real: bool, mode: str = "bce", logits: bool = True) -> torch.Tensor:
    """One discriminator's loss against the label ``real`` (1) or fake (0), mean over all elements."""
    target = torch.full_like(score, 1.0 if real else 0.0)
    if mode == "bce":
        if logits:
            return F.binary_cross_entropy_with_logits(score.float(), target.float())
        return F.binary_cross_entropy(score.float().clamp(1e-12, 1 - 1e-7), target.float())
    if mode == "lsgan":
        return F.mse_loss(score.float(), target.float())
    raise ValueError(f"unknown GAN mode {mode!r}; expected one of {', '.join(GAN_MODES)}")


def _per_disc(logits: bool | Sequence[bool], n: int) -> list[bool]:
    return [bool(logits)] * n if isinstance(logits, bool) else [bool(v) for v in logits]


def generator_adversarial(fake_scores: Sequence[torch.Tensor], mode: str = "bce", form: str = "product",
                          logits: bool | Sequence[bool] = True) -> torch.Tensor:
    """G's adversarial loss over all discriminators' scores of the generated image (before the weight α).

    ``logits``: one flag for all discriminators or one per discriminator (False = it ends in a sigmoid).
    """
    flags = _per_disc(logits, len(fake_scores))
    terms = [gan_term(score, True, mode, flag) for score, flag in zip(fake_scores, flags)]
    if not terms:
        raise ValueError("generator_adversarial needs at least one discriminator score")
    total = torch.stack(terms).sum()
    if form == "product":
        return total
    if form == "average":
        return total / len(terms)
    raise ValueError(f"unknown GAN form {form!r}; expected one of {', '.join(GAN_FORMS)}")


def discriminator_adversarial(real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor],
                              mode: str = "bce", form: str = "product",
                              logits: bool | Sequence[bool] = True) -> torch.Tensor:
    """All discriminators' loss (before α). Each D only sees its own terms' gradient, so one backward of the
    sum trains every D exactly as separate per-D steps would."""
    if len(real_scores) != len(fake_scores) or not real_scores:
        raise ValueError("discriminator_adversarial needs one real and one fake score per discriminator")
    flags = _per_disc(logits, len(real_scores))
    terms = [gan_term(r, True, mode, flag) + gan_term(f, False, mode, flag)
             for r, f, flag in zip(real_scores, fake_scores, flags)]
    total = torch.stack(terms).sum()
    if form == "product":
        return total
    if form == "average":
        return 0.5 * total
    raise ValueError(f"unknown GAN form {form!r}; expected one of {', '.join(GAN_FORMS)}")


class ImagePool:
    """History of generated D inputs (Shrivastava et al. 2017; the official ``util/image_pool.py`` rule).

    While the pool is not full every image is stored and returned; then each image is, with probability 1/2,
    swapped with a random stored one (the stored one is returned). ``size == 0`` returns the batch unchanged.
    Its own seeded RNG and :meth:`state_dict` make training resumable bit-exactly.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return batch
        out = []
        for image in batch.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                index = self.rng.randint(0, self.size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> tuple[dict, torch.Tensor | None]:
        """(JSON-able scalar state, stacked images or None)."""
        stacked = torch.cat(self.images, 0).cpu() if self.images else None
        return {"size": self.size, "count": len(self.images), "rng": _rng_to_json(self.rng.getstate())}, stacked

    def load_state_dict(self, state: dict, images: torch.Tensor | None, device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        self.rng.setstate(_rng_from_json(state["rng"]))
        count = int(state.get("count", 0))
        self.images = [] if images is None or count == 0 else [img.unsqueeze(0).to(device) for img in images[:count]]


def _rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def l1(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel L1, mean over all elements (official ``L1Loss`` on [-1, 1] images)."""
    return F.l1_loss(generated.float(), target.float())


class _FeatureLoss(nn.Module):
    """A loss on frozen VGG features of the generated and the target image.

    The trainer computes each image's features once and passes them to every feature loss (perceptual and
    style share them); called alone, the loss runs the network itself. Target features never get gradients.
    """

    def __init__(self, vgg: nn.Module, layers: Iterable[str]) -> None:
        super().__init__()
        self.vgg = vgg
        self.layers = tuple(layers)

    def features(self, generated: torch.Tensor, target: torch.Tensor,
                 target_features: dict[str, torch.Tensor] | None,
                 generated_features: dict[str, torch.Tensor] | None):
        gen = generated_features if generated_features is not None else self.vgg(generated)
        with torch.no_grad():
            tgt = target_features if target_features is not None else self.vgg(target)
        return gen, {name: value.detach() for name, value in tgt.items()}


class PerceptualLoss(_FeatureLoss):
    """Σ_layers w · mean|φ(generated) − φ(target)| with a frozen :class:`~posetransfer.weights.vgg.VGGFeatures`.

    The paper setting is one layer, relu1_2 (official ``vgg19.features[:4]``, target features detached).
    """

    def __init__(self, vgg: nn.Module, layers: Iterable[str] = ("relu1_2",),
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(vgg, layers)
        self.weights = tuple(weights) if weights is not None else (1.0,) * len(self.layers)
        if len(self.weights) != len(self.layers):
            raise ValueError("PerceptualLoss: one weight per layer")

    def forward(self, generated: torch.Tensor, target: torch.Tensor,
                target_features: dict[str, torch.Tensor] | None = None,
                generated_features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        gen, tgt = self.features(generated, target, target_features, generated_features)
        total = generated.new_zeros((), dtype=torch.float32)
        for name, weight in zip(self.layers, self.weights):
            total = total + weight * F.l1_loss(gen[name].float(), tgt[name].float())
        return total


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → B×C×C, normalised by C·H·W (GFLA / Johnson et al.)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class StyleLoss(_FeatureLoss):
    """Σ_layers mean|Gram(φ(generated)) − Gram(φ(target))| (structure-aware eq. 14, GFLA layers relu2_2..relu5_2)."""

    def __init__(self, vgg: nn.Module, layers: Iterable[str] = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")) -> None:
        super().__init__(vgg, layers)

    def forward(self, generated: torch.Tensor, target: torch.Tensor,
                target_features: dict[str, torch.Tensor] | None = None,
                generated_features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        gen, tgt = self.features(generated, target, target_features, generated_features)
        total = generated.new_zeros((), dtype=torch.float32)
        for name in self.layers:
            total = total + F.l1_loss(gram_matrix(gen[name]), gram_matrix(tgt[name]))
        return total
