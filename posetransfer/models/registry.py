"""Build models by name, and save/load generators as self-describing safetensors files.

Model files register themselves with :func:`register_generator` / :func:`register_discriminator`;
:data:`MODEL_MODULES` lists the files imported on first use (so the registry has no import cycle and
adding an architecture is one file plus one line here).

A generator file (``*.safetensors``) carries in its metadata the architecture name (``arch``) and the
JSON config it was built with (``config``), so :func:`load_generator` needs nothing else. Training
checkpoints are folders holding ``generator.safetensors`` (see ``posetransfer.checkpoint``).
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import CheckpointError, ModelError
from .weights_guard import check_declared_size, check_weight_dtypes

MODEL_MODULES: tuple[str, ...] = (
    "posetransfer.models.patn",
    "posetransfer.models.apatn",
    "posetransfer.models.pona",
    "posetransfer.models.resnet",
    "posetransfer.models.flow",
    "posetransfer.models.gfla",
    "posetransfer.models.discriminators",
    "posetransfer.models.flow_discriminator",
)

_GENERATORS: dict[str, Callable[..., nn.Module]] = {}
_DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {}
_loaded = False


def register_generator(name: str):
    """Class/function decorator: ``@register_generator("patn")``."""

    def wrap(factory):
        _GENERATORS[name] = factory
        return factory

    return wrap


def register_discriminator(name: str):
    def wrap(factory):
        _DISCRIMINATORS[name] = factory
        return factory

    return wrap


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside an existing file: surface it
                raise
    _loaded = True


def generator_names() -> list[str]:
    _ensure_loaded()
    return sorted(_GENERATORS)


def discriminator_names() -> list[str]:
    _ensure_loaded()
    return sorted(_DISCRIMINATORS)


def build_generator(name: str, **config: Any) -> nn.Module:
    """Build a generator by registry name, e.g. ``build_generator("patn", preset="deepfashion")``."""
    _ensure_loaded()
    if name not in _GENERATORS:
        raise ModelError(f"unknown generator {name!r}; known: {', '.join(sorted(_GENERATORS))}")
    model = _build_checked(_GENERATORS[name], "generator", name, config)
    model.arch = name
    # a factory may state its fully resolved options (preset expanded, defaults filled in): saving those
    # keeps a checkpoint rebuildable even if a preset's defaults change later
    model.config = dict(getattr(model, "resolved_config", None) or config)
    return model


def build_discriminator(name: str, **config: Any) -> nn.Module:
    _ensure_loaded()
    if name not in _DISCRIMINATORS:
        raise ModelError(f"unknown discriminator {name!r}; known: {', '.join(sorted(_DISCRIMINATORS))}")
    model = _build_checked(_DISCRIMINATORS[name], "discriminator", name, config)
    model.arch = name
    model.config = dict(config)
    return model


def _build_checked(factory: Callable[..., nn.Module], kind: str, name: str, config: dict[str, Any]) -> nn.Module:
    """Options a layer cannot take (a negative width) are a one-line ModelError, not a torch traceback; and
    a zero width, which torch accepts until the first forward pass, is refused here."""
    try:
        model = factory(**config)
    except (ValueError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise ModelError(f"{kind} {name!r}: cannot build with these options ({first})") from None
    empty = next((key for key, p in model.named_parameters() if p.numel() == 0), None)
    if empty is not None:
        zeros = [f"{k}=0" for k, v in config.items() if v == 0 and not isinstance(v, bool)]
        raise ModelError(f"{kind} {name!r}: parameter {empty} would be empty "
                         f"({', '.join(zeros) or 'a width of 0'}: widths must be >= 1)")
    return model


GENERATOR_FORMAT = "posetransfer-generator-1"
DISCRIMINATOR_FORMAT = "posetransfer-discriminator-1"


def _save_model(model: nn.Module, path: str | os.PathLike, file_format: str) -> None:
    from safetensors.torch import save_file

    from ..io import atomic_path

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {
        "format": file_format,
        "arch": getattr(model, "arch", ""),
        "config": json.dumps(getattr(model, "config", {})),
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def save_generator(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s weights and its (arch, config) to a safetensors file, atomically."""
    _save_model(model, path, GENERATOR_FORMAT)


def save_discriminator(model: nn.Module, path: str | os.PathLike) -> None:
    """Same as :func:`save_generator` for a single discriminator (used by ``posetransfer convert``)."""
    _save_model(model, path, DISCRIMINATOR_FORMAT)


def read_generator_file(path: str | os.PathLike, file_format: str = GENERATOR_FORMAT,
                        ) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Return (arch, config, state dict) of a generator safetensors file; never unpickles anything."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if metadata.get("format") != file_format or "arch" not in metadata:
        kind = "generator" if file_format == GENERATOR_FORMAT else "discriminator"
        raise CheckpointError(f"{path}: safetensors file has no posetransfer {kind} metadata")
    try:
        config = json.loads(metadata.get("config", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: malformed config in checkpoint metadata") from None
    check_weight_dtypes({key: value.dtype for key, value in state.items()}, str(path))
    return metadata["arch"], config, state


def load_generator(path: str | os.PathLike, arch: str | None = None, map_location: str | torch.device = "cpu",
                   ) -> nn.Module:
    """Load any posetransfer generator: a ``.safetensors`` file, a checkpoint folder or a run folder.

    With ``arch``, a checkpoint of another architecture is a :class:`CheckpointError`. The model is
    returned in eval mode.
    """
    path = Path(path)
    if path.is_dir():
        from ..checkpoint import resolve_generator_file

        path = resolve_generator_file(path)
    found_arch, config, state = read_generator_file(path)
    if arch is not None and found_arch != arch:
        raise CheckpointError(f"{path}: checkpoint holds a {found_arch!r} generator, not {arch!r}")
    try:
        check_declared_size(lambda: build_generator(found_arch, **config), state, str(path), config)
        model = build_generator(found_arch, **config)
    except (ModelError, TypeError) as exc:  # a config this version cannot build
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the {found_arch!r} architecture ({first})") from None
    return model.to(map_location).eval()


def load_discriminator(path: str | os.PathLike, arch: str | None = None,
                       map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a discriminator file written by :func:`save_discriminator` (train mode, like a fresh one)."""
    path = Path(path)
    found_arch, config, state = read_generator_file(path, DISCRIMINATOR_FORMAT)
    if arch is not None and found_arch != arch:
        raise CheckpointError(f"{path}: file holds a {found_arch!r} discriminator, not {arch!r}")
    try:
        check_declared_size(lambda: build_discriminator(found_arch, **config), state, str(path), config)
        model = build_discriminator(found_arch, **config)
    except (ModelError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the {found_arch!r} discriminator ({first})") from None
    return model.to(map_location)
