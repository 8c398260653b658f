"""Build models by name.

Model files register themselves with :func:`register_generator` / :func:`register_discriminator`;
:data:`MODEL_MODULES` lists the files imported on first use (adding an architecture is one file plus one
line here). Registering a name twice is a :class:`ModelError`: two files claiming one name would make a
saved checkpoint rebuild whichever happened to be imported last.

Every built model carries ``model.arch`` (its registry name) and ``model.config`` — the *fully resolved*
options (preset expanded, defaults filled in), so a saved file rebuilds the same network even if a preset's
defaults change later. A factory with explicit keyword parameters gets them recorded here; a factory that
takes ``**overrides`` must state its resolved options itself (``model.resolved_config``, see
:func:`posetransfer.models.blocks.with_resolved_config`), else building it is an error.

Saving and loading files is :mod:`posetransfer.modelfile`.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from torch import nn

from ..errors import ModelError

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


def _register(table: dict[str, Callable[..., nn.Module]], role: str, name: str):
    def wrap(factory):
        if name in table:
            raise ModelError(f"{role} name {name!r} is registered twice ({_where(table[name])} and {_where(factory)})")
        table[name] = factory
        return factory

    return wrap


def _where(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def register_generator(name: str):
    """Class/function decorator: ``@register_generator("patn")``."""
    return _register(_GENERATORS, "generator", name)


def register_discriminator(name: str):
    """Class/function decorator: ``@register_discriminator("patn_resnet")``."""
    return _register(_DISCRIMINATORS, "discriminator", name)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for module in MODEL_MODULES:
        importlib.import_module(module)
    _loaded = True


def generator_names() -> list[str]:
    _ensure_loaded()
    return sorted(_GENERATORS)


def discriminator_names() -> list[str]:
    _ensure_loaded()
    return sorted(_DISCRIMINATORS)


def _resolved_config(factory: Callable[..., nn.Module], model: nn.Module, name: str,
                     config: dict[str, Any]) -> dict[str, Any]:
    stated = getattr(model, "resolved_config", None)
    if stated is not None:
        return dict(stated)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is None or any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        raise ModelError(f"{name!r}: its builder takes **options but does not record the resolved ones "
                         "(set model.resolved_config, e.g. with blocks.with_resolved_config)")
    bound = signature.bind(**config)
    bound.apply_defaults()
    return dict(bound.arguments)


def _build(table: dict[str, Callable[..., nn.Module]], role: str, name: str, config: dict[str, Any]) -> nn.Module:
    _ensure_loaded()
    if name not in table:
        raise ModelError(f"unknown {role} {name!r}; known: {', '.join(sorted(table))}")
    model = _build_checked(table[name], role, name, config)
    # plain attributes: setattr, since nn.Module.__setattr__ is typed for tensors and modules only
    setattr(model, "arch", name)
    setattr(model, "config", _resolved_config(table[name], model, name, config))
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


def build_generator(name: str, **config: Any) -> nn.Module:
    """Build a generator by registry name, e.g. ``build_generator("patn", dataset="deepfashion")``."""
    return _build(_GENERATORS, "generator", name, config)


def build_discriminator(name: str, **config: Any) -> nn.Module:
    """Build a discriminator by registry name, e.g. ``build_discriminator("patn_resnet", input_nc=21)``."""
    return _build(_DISCRIMINATORS, "discriminator", name, config)
