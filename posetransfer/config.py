"""Training configurations: YAML presets (one per paper × dataset) + ``--set key=value`` overrides.

A config is plain data (nested dicts), so it can be printed, stored in checkpoints and diffed. The schema
below lists every key with its type and default; a preset only has to give what differs from the
defaults, and anything it gives that the schema does not know is a :class:`ConfigError` naming the key.
``model`` and each ``discriminators`` entry are free keyword arguments of the registry builders (checked
by the builders: unknown model options raise ModelError there), apart from their ``name`` and ``input``.

Overrides: ``load_config("patn-market", ["optim.lr=1e-4", "train.batch_size=8"])``. The value is parsed as
YAML (``[0.5, 0.999]``, ``null``, ``true``); numbers like ``1e-4`` that YAML 1.1 reads as strings are
accepted where a float is expected. ``discriminators.NAME=null`` removes a discriminator.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import ConfigError
from .kinds import KIND_NAMES, MARKET

PRESET_DIR = Path(__file__).parent / "presets"

#: tensors a discriminator can be conditioned on; ``image`` is the real or generated image being judged
DISCRIMINATOR_INPUTS = ("image", "source_image", "source_heatmaps", "target_heatmaps")

# ---- schema: key -> (type, default). Types: str, int, float, bool, ("enum", a, b), ("list", type, length|None),
# ("optional", type), "free" (any mapping), "discriminators".
SCHEMA: dict[str, Any] = {
    "name": (str, "custom"),
    "paper": (str, ""),
    "notes": (str, ""),
    "dataset": {
        "kind": (("enum", *KIND_NAMES), MARKET.name),
        "size": (("list", int, 2), list(MARKET.size)),
        "heatmap": (("enum", "gaussian", "onehot"), "gaussian"),
        "sigma": (float, 6.0),
        "augment": (bool, False),
        "on_bad_sample": (("enum", "fail", "skip"), "skip"),
    },
    "model": ("free", {"name": "patn"}),
    # the PATN pair (appearance D_A, shape D_S); presets normally give their own
    "discriminators": ("discriminators", {
        "appearance": {"name": "patn_resnet", "input": ["image", "source_image"]},
        "shape": {"name": "patn_resnet", "input": ["image", "target_heatmaps"]},
    }),
    "loss": {
        "gan_mode": (("enum", "bce", "lsgan"), "bce"),
        "gan_form": (("enum", "product", "average"), "product"),
        "gan": (float, 5.0),
        "l1": (float, 1.0),
        "perceptual": (float, 1.0),
        "perceptual_layers": (("list", str, None), ["relu1_2"]),
        "style": (float, 0.0),
        "style_layers": (("list", str, None), []),
        "correctness": (float, 0.0),
        "regularization": (float, 0.0),
        "pool_size": (int, 0),
    },
    "optim": {
        "lr": (float, 2.0e-4),
        "betas": (("list", float, 2), [0.5, 0.999]),
        "d_lr_ratio": (float, 1.0),
        "iterations": (int, 90000),
        "decay_start": (int, 60000),
        "grad_clip": (("optional", float), None),
    },
    "train": {
        "batch_size": (int, 32),
        "workers": (int, 4),
        "seed": (int, 0),
        "stage": (("enum", "full", "flow"), "full"),
        "device": (("enum", "auto", "cpu", "cuda"), "auto"),
        "log_every": (int, 50),
        "image_every": (int, 1000),
        "checkpoint_every": (int, 1000),
        "keep_last": (int, 3),
        "amp": (bool, True),
        "channels_last": (("optional", bool), None),  # None: on CPU for models without instance norm
        "compile": (("optional", str), None),         # torch.compile backend for the generator (e.g. inductor)
        "init": (("optional", str), None),
        "init_flow": (("optional", str), None),   # part-flow model: its flow nets from a 'gfla' generator
    },
}

POSITIVE = {("train", "batch_size"), ("train", "log_every"), ("train", "image_every"),
            ("train", "checkpoint_every"), ("train", "keep_last"), ("optim", "iterations"), ("optim", "lr"),
            ("dataset", "sigma")}
NON_NEGATIVE = {("train", "workers"), ("optim", "decay_start"), ("loss", "pool_size"), ("loss", "gan"),
                ("loss", "l1"), ("loss", "perceptual"), ("loss", "style"), ("loss", "correctness"),
                ("loss", "regularization"), ("optim", "d_lr_ratio")}


def defaults() -> dict[str, Any]:
    """The config every preset starts from."""

    def fill(schema: dict) -> dict:
        return {key: fill(spec) if isinstance(spec, dict) else copy.deepcopy(spec[1]) for key, spec in schema.items()}

    return fill(SCHEMA)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(list_presets())}")
    return path


def load_config(preset_or_path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a preset by name (``patn-market``) or a YAML file, apply ``key=value`` overrides, validate."""
    text = str(preset_or_path)
    path = Path(text) if (text.endswith((".yaml", ".yml")) or os.sep in text) else preset_path(text)
    data = read_yaml(path)
    config = merge(defaults(), data, where=str(path))
    config = apply_overrides(config, overrides)
    validate(config, where=str(path))
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    return data


def merge(base: dict[str, Any], data: dict[str, Any], where: str, schema: dict | None = None,
          prefix: str = "") -> dict[str, Any]:
    """Deep-merge ``data`` into ``base``; unknown keys (outside free sections) are a ConfigError."""
    schema = SCHEMA if schema is None else schema
    out = copy.deepcopy(base)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(f"{where}: unknown config key {dotted!r}; known: {', '.join(schema)}")
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted} must be a mapping")
            out[key] = merge(out.get(key, {}), value, where, spec, dotted + ".")
        elif spec[0] == "free":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted} must be a mapping")
            out[key] = copy.deepcopy(value)
        elif spec[0] == "discriminators":
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted} must be a mapping of name → discriminator")
            out[key] = copy.deepcopy(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(config: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set dotted keys: ``optim.lr=1e-4``; a key the schema does not know is a ConfigError naming it."""
    config = copy.deepcopy(config)
    for item in overrides:
        path, value = parse_override(item)
        dotted = ".".join(path)
        schema: Any = SCHEMA
        node = config
        for depth, part in enumerate(path[:-1]):
            spec = schema.get(part) if isinstance(schema, dict) else None
            if spec is None:
                raise ConfigError(f"unknown config key {dotted!r} in override {item!r}")
            if isinstance(spec, dict):
                schema, node = spec, node.setdefault(part, {})
            elif spec[0] in ("free", "discriminators"):
                node = node.setdefault(part, {})
                schema = "free"
                for inner in path[depth + 1:-1]:  # nested free keys: discriminators.shape.ndf
                    if not isinstance(node.get(inner, {}), dict):
                        raise ConfigError(f"override {item!r}: {inner} is not a mapping")
                    node = node.setdefault(inner, {})
                break
            else:
                raise ConfigError(f"unknown config key {dotted!r} in override {item!r} ({part} is not a section)")
        last = path[-1]
        if schema != "free" and last not in schema:
            raise ConfigError(f"unknown config key {dotted!r} in override {item!r}")
        if schema != "free" and isinstance(schema[last], dict):
            raise ConfigError(f"override {item!r}: {dotted} is a section; set one of its keys")
        if schema == "free" and path[0] == "discriminators" and len(path) == 2 and value is None:
            node.pop(last, None)  # discriminators.shape=null removes it
        else:
            node[last] = value
    return config


def _check(value: Any, kind: Any, dotted: str, where: str) -> Any:
    """Validate (and coerce int→float, '1e-4'→float) one value; returns the clean value."""
    if isinstance(kind, tuple) and kind[0] == "optional":
        return None if value is None else _check(value, kind[1], dotted, where)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {dotted} must be a number, got {value!r}")
        number = None
        try:
            if isinstance(value, (int, float, str)):
                number = float(value)
        except ValueError:
            pass
        except OverflowError:   # an integer beyond float range
            number = math.inf
        if number is None:
            raise ConfigError(f"{where}: {dotted} must be a number, got {value!r}")
        if not math.isfinite(number):   # nan passes every `<= 0` check; inf weights train into inf weights
            raise ConfigError(f"{where}: {dotted} must be a finite number, got {value!r}")
        return number
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: {dotted} must be an integer, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {dotted} must be true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {dotted} must be a string, got {value!r}")
        return value
    if isinstance(kind, tuple) and kind[0] == "enum":
        if value not in kind[1:]:
            raise ConfigError(f"{where}: {dotted} must be one of {', '.join(kind[1:])}, got {value!r}")
        return value
    if isinstance(kind, tuple) and kind[0] == "list":
        _, inner, length = kind
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {dotted} must be a list, got {value!r}")
        if length is not None and len(value) != length:
            raise ConfigError(f"{where}: {dotted} must have {length} items, got {len(value)}")
        return [_check(v, inner, f"{dotted}[{i}]", where) for i, v in enumerate(value)]
    raise AssertionError(f"bad schema kind {kind!r}")


#: Adam's float32 update ``lr / (1 - beta1^t) * m / sqrt(v)`` overflows near 3.4e38; no useful rate is near
MAX_LR = 1e30
#: seeds feed torch/numpy generators (64-bit, and sums like ``seed * 100003 + epoch``): keep them 32-bit
MAX_SEED = 2 ** 32 - 1


def check_seed(seed: int, what: str = "--seed") -> int:
    """A seed in [0, :data:`MAX_SEED`] (numpy refuses negative seeds, torch overflows on huge ones)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{what} must be in [0, {MAX_SEED}], got {seed}")
    return seed


def _check_ranges(config: dict[str, Any], where: str) -> None:
    """The ranges the type check cannot express (floats are already finite, see :func:`_check`)."""
    for i, beta in enumerate(config["optim"]["betas"]):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"{where}: optim.betas[{i}] must be in [0, 1), got {beta}")
    lr, ratio = config["optim"]["lr"], config["optim"]["d_lr_ratio"]
    if lr > MAX_LR or lr * ratio > MAX_LR:
        key = "optim.lr" if lr > MAX_LR else "optim.lr x optim.d_lr_ratio"
        raise ConfigError(f"{where}: {key} must be <= {MAX_LR:g} (the float32 optimizer update overflows), "
                          f"got {lr if lr > MAX_LR else lr * ratio:g}")
    clip = config["optim"]["grad_clip"]
    if clip is not None and not clip > 0:
        raise ConfigError(f"{where}: optim.grad_clip must be > 0 (or null for no clipping), got {clip}")
    check_seed(config["train"]["seed"], f"{where}: train.seed")
    for section in ("model", *(f"discriminators.{name}" for name in config["discriminators"])):
        node = config["model"] if section == "model" else config["discriminators"][section.split(".", 1)[1]]
        _check_model_numbers(node, section, where)


def _check_model_numbers(node: Any, dotted: str, where: str) -> None:
    """Model options are free keywords of the builders, but no width, depth or rate is negative or non-finite
    (the builders check what else they need; a zero width is a ModelError there)."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_model_numbers(value, f"{dotted}.{key}", where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _check_model_numbers(value, f"{dotted}[{i}]", where)
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{where}: {dotted} must be a finite number, got {node}")
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and node < 0:
        raise ConfigError(f"{where}: {dotted} must be >= 0, got {node}")


def validate(config: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Check every key's type in place (coercing numbers); raise ConfigError naming the first bad key."""

    def walk(node: dict, schema: dict, prefix: str) -> None:
        for key, spec in schema.items():
            dotted = f"{prefix}{key}"
            if isinstance(spec, dict):
                if not isinstance(node.get(key), dict):
                    raise ConfigError(f"{where}: {dotted} must be a mapping")
                unknown = set(node[key]) - set(spec)
                if unknown:
                    raise ConfigError(f"{where}: unknown config key {dotted}.{sorted(unknown)[0]}")
                walk(node[key], spec, dotted + ".")
                continue
            kind = spec[0]
            if kind == "free":
                model = node.get(key)
                if not isinstance(model, dict) or not isinstance(model.get("name"), str):
                    raise ConfigError(f"{where}: {dotted}.name must name a registered generator")
            elif kind == "discriminators":
                _validate_discriminators(node.get(key), dotted, where)
            else:
                node[key] = _check(node.get(key), kind, dotted, where)

    unknown = set(config) - set(SCHEMA)
    if unknown:
        raise ConfigError(f"{where}: unknown config key {sorted(unknown)[0]!r}")
    walk(config, SCHEMA, "")
    for section, key in POSITIVE:
        if config[section][key] <= 0:
            raise ConfigError(f"{where}: {section}.{key} must be > 0, got {config[section][key]}")
    for section, key in NON_NEGATIVE:
        if config[section][key] < 0:
            raise ConfigError(f"{where}: {section}.{key} must be >= 0, got {config[section][key]}")
    _check_ranges(config, where)
    if config["optim"]["decay_start"] > config["optim"]["iterations"]:
        raise ConfigError(f"{where}: optim.decay_start ({config['optim']['decay_start']}) is after "
                          f"optim.iterations ({config['optim']['iterations']})")
    if config["loss"]["gan"] > 0 and not config["discriminators"] and config["train"]["stage"] == "full":
        raise ConfigError(f"{where}: loss.gan > 0 needs at least one entry in discriminators")
    from .weights.vgg import VGG19_LAYERS

    for list_key in ("perceptual_layers", "style_layers"):
        for layer in config["loss"][list_key]:
            if layer not in VGG19_LAYERS:
                raise ConfigError(f"{where}: loss.{list_key}: unknown VGG layer {layer!r}; "
                                  f"known: {', '.join(VGG19_LAYERS)}")
    if config["loss"]["style"] > 0 and not config["loss"]["style_layers"]:
        raise ConfigError(f"{where}: loss.style > 0 needs loss.style_layers")
    if config["loss"]["perceptual"] > 0 and not config["loss"]["perceptual_layers"]:
        raise ConfigError(f"{where}: loss.perceptual > 0 needs loss.perceptual_layers")
    return config


def _validate_discriminators(discs: Any, dotted: str, where: str) -> None:
    if not isinstance(discs, dict):
        raise ConfigError(f"{where}: {dotted} must be a mapping of name → discriminator")
    for name, spec in discs.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: {dotted}.{name} must be a mapping with name and input")
        if not isinstance(spec.get("name"), str):
            raise ConfigError(f"{where}: {dotted}.{name}.name must name a registered discriminator")
        inputs = spec.get("input")
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise ConfigError(f"{where}: {dotted}.{name}.input must be a non-empty list of tensor names")
        bad = [i for i in inputs if i not in DISCRIMINATOR_INPUTS]
        if bad:
            raise ConfigError(f"{where}: {dotted}.{name}.input: unknown tensor {bad[0]!r}; "
                              f"known: {', '.join(DISCRIMINATOR_INPUTS)}")
        if "input_nc" in spec:
            raise ConfigError(f"{where}: {dotted}.{name}.input_nc is derived from input; remove it")


def dump_config(config: dict[str, Any]) -> str:
    """YAML text of a config (the run folder keeps one as ``config.yaml``)."""
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=110)
