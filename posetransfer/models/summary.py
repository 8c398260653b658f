"""Layer tables and parameter counts for every registered model, without allocating any weights.

Why the meta device: a full-size PATN has 41 M parameters and DeepFashion inputs are 256×176; building it
on ``torch.device("meta")`` and running a meta forward pass gives every layer's output shape and parameter
count in about a second, with no memory and no arithmetic. Used by ``posetransfer models`` and
``posetransfer summary``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..kinds import parse_kind, renamed_dataset
from .blocks import DATASET_SETTINGS, count_parameters, dataset_key
from .registry import build_discriminator, build_generator, discriminator_names, generator_names

#: the two discriminator roles of the PATN family and their input channels (image + condition)
DISCRIMINATOR_ROLES = {"appearance": 6, "shape": 21}
#: discriminators that see other inputs than the PATN pair: their roles and input channels
ROLES_BY_DISCRIMINATOR: dict[str, dict[str, int]] = {"spectral_resnet": {"image": 3}}
#: discriminators configured by dataset settings of their own instead of PATN's norm choice
DATASET_CONFIGURED_DISCRIMINATORS = {"spectral_resnet"}


@dataclass
class LayerRow:
    name: str
    kind: str
    output: str
    params: int
    calls: int = 1


@dataclass
class Summary:
    name: str
    config: dict[str, Any]
    inputs: list[tuple[int, ...]]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0


def _shape_text(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "×".join(str(d) for d in value.shape)
    if isinstance(value, (tuple, list)):
        parts = [_shape_text(v) for v in value]
        return ", ".join(p for p in parts if p)
    if hasattr(value, "image") and isinstance(getattr(value, "image"), torch.Tensor):
        return _shape_text(value.image)
    return ""


def _build(kind: str, name: str, dataset: str | None, overrides: dict[str, Any]) -> nn.Module:
    """Build on the meta device; generators get ``dataset=`` if they understand it."""
    with torch.device("meta"):
        if kind == "discriminator":
            config = dict(overrides)
            if dataset is not None and name in DATASET_CONFIGURED_DISCRIMINATORS:
                config.setdefault("dataset", dataset)
            elif dataset is not None:
                config.setdefault("norm", DATASET_SETTINGS[dataset]["norm"])
            roles = ROLES_BY_DISCRIMINATOR.get(name, DISCRIMINATOR_ROLES)
            config.setdefault("input_nc", next(iter(roles.values())))
            try:
                return build_discriminator(name, **config)
            except TypeError as exc:
                raise ModelError(f"discriminator {name!r}: {exc}") from None
        try:
            return build_generator(name, **({"dataset": dataset} if dataset else {}), **overrides)
        except TypeError as exc:
            if dataset is None:
                raise ModelError(f"generator {name!r}: {exc}") from None
        try:  # a generator without dataset settings (e.g. another family): build it with its defaults
            return build_generator(name, **overrides)
        except TypeError as exc:
            raise ModelError(f"generator {name!r}: {exc}") from None


def input_size(model: nn.Module, dataset: str) -> tuple[int, int]:
    """The frame a model's dataset settings are meant for: its own ``dataset_frames`` (GFLA's DeepFashion runs
    at 256×256) or the dataset's standard size."""
    return tuple(getattr(model, "dataset_frames", {}).get(dataset, parse_kind(dataset).size))


def model_kind(name: str) -> str:
    if name in generator_names():
        return "generator"
    if name in discriminator_names():
        return "discriminator"
    known = ", ".join(generator_names() + discriminator_names())
    raise ModelError(f"unknown model {name!r}; known: {known}")


def summarize(name: str, dataset: str | None = None, overrides: dict[str, Any] | None = None,
              size: tuple[int, int] | None = None, depth: int = 2, batch: int = 1, *,
              preset: str | None = None) -> Summary:
    """Layer table of model ``name`` for one forward pass at the dataset's image size (meta device);
    ``preset=`` is the deprecated name of ``dataset=``."""
    dataset = renamed_dataset(dataset, preset, "summary")
    if dataset is not None:
        dataset = dataset_key(dataset, DATASET_SETTINGS)
    kind = model_kind(name)
    model = _build(kind, name, dataset, dict(overrides or {}))
    h, w = size or input_size(model, dataset or "market")
    if kind == "generator":
        pose = int(getattr(model, "pose_channels", 18))
        inputs = [(batch, 3, h, w), (batch, pose, h, w), (batch, pose, h, w)]
    else:
        inputs = [(batch, int(model.config["input_nc"]), h, w)]

    rows: dict[str, LayerRow] = {}
    handles = []

    def pre_hook(module_name: str, module: nn.Module):
        def hook(_mod, _args):
            if module_name in rows:
                rows[module_name].calls += 1
            else:
                rows[module_name] = LayerRow(module_name, type(module).__name__, "", count_parameters(module))
        return hook

    def post_hook(module_name: str):
        def hook(_mod, _args, output):
            rows[module_name].output = _shape_text(output)
        return hook

    for module_name, module in model.named_modules():
        if not module_name or module_name.count(".") >= depth:
            continue
        handles.append(module.register_forward_pre_hook(pre_hook(module_name, module)))
        handles.append(module.register_forward_hook(post_hook(module_name)))
    model.eval()
    try:
        with torch.no_grad():
            tensors = [torch.empty(s, device="meta") for s in inputs]
            output = model(*tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{name}: forward pass failed at input size {h}×{w} ({first})") from None
    finally:
        for handle in handles:
            handle.remove()
    rows["(output)"] = LayerRow("(output)", "", _shape_text(output), 0)
    total = count_parameters(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(name, dict(getattr(model, "config", {})), inputs, list(rows.values()), total, trainable)


def format_summary(summary: Summary) -> str:
    lines = [f"{summary.name}  config: {summary.config}",
             "inputs: " + ", ".join("×".join(map(str, s)) for s in summary.inputs)]
    width = max([len(r.name) for r in summary.rows] + [5])
    kind_w = max([len(r.kind) for r in summary.rows] + [4])
    out_w = max([len(r.output) for r in summary.rows] + [6])
    lines.append(f"{'layer':<{width}}  {'type':<{kind_w}}  {'output':<{out_w}}  {'params':>12}")
    lines.append("-" * (width + kind_w + out_w + 18))
    for r in summary.rows:
        calls = f" (×{r.calls})" if r.calls > 1 else ""
        params = f"{r.params:,}" if r.name != "(output)" else ""
        lines.append(f"{r.name:<{width}}  {r.kind:<{kind_w}}  {r.output:<{out_w}}  {params:>12}{calls}")
    lines.append("-" * (width + kind_w + out_w + 18))
    lines.append(f"total parameters: {summary.total_params:,} ({summary.total_params / 1e6:.2f} M)")
    return "\n".join(lines)


def catalog() -> list[dict[str, Any]]:
    """One entry per registered model: parameters at Market and DeepFashion settings and input sizes."""
    entries: list[dict[str, Any]] = []
    for name in generator_names():
        entry: dict[str, Any] = {"name": name, "kind": "generator"}
        for dataset in DATASET_SETTINGS:
            h, w = parse_kind(dataset).size
            try:
                model = _build("generator", name, dataset, {})
                entry[f"params_{dataset}"] = count_parameters(model)
                pose = int(getattr(model, "pose_channels", 18))
                h, w = input_size(model, dataset)
            except Exception as exc:  # a broken model must not hide the others
                entry[f"params_{dataset}"] = None
                entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                pose = 18
            entry[f"input_{dataset}"] = f"3×{h}×{w} + 2×{pose}×{h}×{w}"
        entries.append(entry)
    for name in discriminator_names():
        for role, channels in ROLES_BY_DISCRIMINATOR.get(name, DISCRIMINATOR_ROLES).items():
            entry = {"name": name, "kind": f"discriminator ({role})"}
            for dataset in DATASET_SETTINGS:
                try:
                    model = _build("discriminator", name, dataset, {"input_nc": channels})
                    entry[f"params_{dataset}"] = count_parameters(model)
                except Exception as exc:
                    entry[f"params_{dataset}"] = None
                    entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                h, w = parse_kind(dataset).size
                entry[f"input_{dataset}"] = f"{channels}×{h}×{w}"
            entries.append(entry)
    return entries


def format_catalog(entries: list[dict[str, Any]]) -> str:
    header = ["name", "kind", "params (market)", "params (deepfashion)", "input (market)", "input (deepfashion)"]
    rows = []
    for e in entries:
        def fmt(n):
            return "-" if n is None else f"{n / 1e6:.2f} M"
        rows.append([e["name"], e["kind"], fmt(e.get("params_market")), fmt(e.get("params_deepfashion")),
                     e.get("input_market", ""), e.get("input_deepfashion", "")])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
