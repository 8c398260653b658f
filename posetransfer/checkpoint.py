"""Training checkpoints: atomic folders of safetensors + JSON, verified by checksums, resumable bit-exactly.

Layout of a run folder::

    <run>/checkpoints/step_00000100/
        generator.safetensors        weights + arch/config/input-contract metadata (modelfile.save_generator;
                                     loadable alone)
        discriminators.safetensors   "<name>.<param>" tensors; metadata = each D's registry name and config
        training_state.safetensors   optimizer moments, RNG states, image pools (tensors only)
        state.json                   step, config, optimizer scalars, data position, python/numpy RNG, ...

The full training state (:func:`save_training` / :func:`restore_training`): weights, Adam moments, GradScaler
states, every process's RNG states and image pools, the data order position; the learning rate is a
function of the step. With all of it, on CPU ``2 x 5`` steps with a resume in between equal ``10`` steps
bit for bit.
        manifest.json                sha256 and size of each file above (written last)

Why this shape: a SIGKILL at any moment must leave either a complete checkpoint or debris the loader
ignores. Files are written into ``step_00000100.tmp/`` and the folder is renamed only when the manifest is
on disk; old checkpoints are renamed to ``*.tmp`` before being deleted (keep-last-N). Loading re-hashes the
files, so truncation or a flipped bit is detected and the previous checkpoint is used, with a warning.
Nothing is unpickled: safetensors and JSON only.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from . import distributed as D
from .errors import CheckpointError
from .io import sha256_file, write_json
from .modelfile import (InputContract, read_discriminator_set, read_generator_file, read_safetensors,
                        save_discriminator_set, save_generator, write_safetensors)
from .seeding import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATORS_FILE = "discriminators.safetensors"
TENSORS_FILE = "training_state.safetensors"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
FORMAT = "posetransfer-checkpoint-1"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dirname(step: int) -> str:
    return f"step_{step:08d}"


def checkpoints_root(run: str | os.PathLike) -> Path:
    return Path(run) / CHECKPOINTS


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    write_safetensors(path, tensors, {"format": "posetransfer-training-state-1"})


def save_checkpoint(run: str | os.PathLike, step: int, generator: torch.nn.Module,
                    discriminators: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor],
                    state: dict[str, Any], keep_last: int | None = None,
                    contract: InputContract | None = None) -> Path:
    """Write ``<run>/checkpoints/step_<step>/`` atomically and prune to the newest ``keep_last``.

    ``contract``: the generator's input contract (the trainer passes the dataset's frame and maps, with
    the run and step as provenance); None → :func:`posetransfer.modelfile.save_generator`'s default."""
    root = checkpoints_root(run)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dirname(step)
    tmp = root / (final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        save_generator(generator, tmp / GENERATOR_FILE, contract)
        save_discriminator_set(discriminators, tmp / DISCRIMINATORS_FILE)
        save_tensors(tensors, tmp / TENSORS_FILE)
        write_json(tmp / STATE_FILE, {"format": FORMAT, **state, "step": int(step)})
        files = {}
        for name in (GENERATOR_FILE, DISCRIMINATORS_FILE, TENSORS_FILE, STATE_FILE):
            path = tmp / name
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        write_json(tmp / MANIFEST_FILE, {"format": FORMAT, "step": int(step), "files": files})
        _fsync_dir(tmp)
    except Exception:   # disk full, read-only: give the space of the unfinished checkpoint back at once
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # re-saving a step (e.g. after resuming from it): move the old one out of the way first
        old = root / (final.name + ".old.tmp")
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)
    if keep_last is not None:
        prune(root, keep_last, keep=final)
    return final


def prune(root: Path, keep_last: int, keep: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints, and stale ``*.tmp`` debris of killed writers.

    ``keep`` (the checkpoint just written) always survives. Checkpoints numbered *after* it belong to an
    abandoned history — the run resumed from an older step because they failed to verify — and go first.
    """
    removed = []
    for debris in root.glob("*.tmp"):
        if debris.is_dir():
            shutil.rmtree(debris, ignore_errors=True)
    steps = list_checkpoints(root)
    doomed: list[Path] = []
    if keep is not None and keep in steps:
        keep_step = _step_of(keep)
        doomed = [f for f in steps if _step_of(f) > keep_step]
        steps = [f for f in steps if _step_of(f) <= keep_step]
    excess = max(0, len(steps) - max(1, keep_last))
    doomed += [f for f in steps if f != keep][:excess]
    for folder in doomed:
        trash = folder.with_name(folder.name + ".deleting.tmp")
        os.rename(folder, trash)  # atomic: a kill during rmtree leaves only ignorable debris
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(folder)
    return removed


def _step_of(folder: Path) -> int:
    match = _STEP_DIR.match(folder.name)
    return int(match.group(1)) if match else -1


# ------------------------------------------------------------------------------------------------
# Finding and verifying
# ------------------------------------------------------------------------------------------------
def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """``step_*`` folders under ``root`` (a checkpoints folder), oldest first; ``*.tmp`` ignored."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


#: the files of every complete checkpoint (the manifest lists exactly these)
REQUIRED_FILES = (GENERATOR_FILE, DISCRIMINATORS_FILE, TENSORS_FILE, STATE_FILE)


def _manifest_entries(manifest_path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The manifest and its ``files`` mapping, which must list every required file with a size and a sha256
    (``"files": []`` or ``{}`` would otherwise verify: nothing to check)."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{manifest_path}: malformed manifest (not JSON)") from None
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{manifest_path}: malformed manifest (no mapping of files)")
    for name in REQUIRED_FILES:
        entry = entries.get(name)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("bytes"), int) and not isinstance(entry.get("bytes"), bool)):
            raise CheckpointError(f"{manifest_path}: malformed manifest (no size and sha256 for {name})")
    return manifest, entries


def verify(folder: str | os.PathLike, files: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Check the manifest's checksums (all files, or only ``files``) and what checksums cannot vouch for —
    a forger can re-compute them — (:func:`check_contents`); return the manifest.

    Raises :class:`CheckpointError` naming the folder and the first bad file.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{folder}: incomplete checkpoint (no {MANIFEST_FILE})")
    manifest, entries = _manifest_entries(manifest_path)
    for name in files or tuple(entries):
        if name not in entries:
            raise CheckpointError(f"{folder}: manifest does not list {name}")
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing checkpoint file")
        expected = entries[name]
        if path.stat().st_size != expected.get("bytes", path.stat().st_size):
            raise CheckpointError(f"{path}: truncated (size {path.stat().st_size}, expected {expected['bytes']})")
        if sha256_file(path) != expected.get("sha256"):
            raise CheckpointError(f"{path}: checksum mismatch (file corrupted)")
        check_contents(folder, name)
    return manifest


def check_contents(folder: Path, name: str) -> None:
    """The shape of one checkpoint file: ``state.json`` holds an integer step (this folder's) and the config;
    the safetensors files hold floating-point weights and optimizer/pool tensors and uint8 RNG states (read
    from their headers, not their data)."""
    path = folder / name
    if name == STATE_FILE:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: unreadable training state (not JSON)") from None
        step = state.get("step") if isinstance(state, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise CheckpointError(f"{path}: malformed training state (step {step!r} is not a step number)")
        named = _STEP_DIR.match(folder.name)
        if named and int(named.group(1)) != step:
            raise CheckpointError(f"{path}: training state of step {step} in the folder of step {named.group(1)}")
        if not isinstance(state.get("config"), dict):
            raise CheckpointError(f"{path}: malformed training state (no config mapping)")
    elif name in (GENERATOR_FILE, DISCRIMINATORS_FILE, TENSORS_FILE):
        from .models.weights_guard import FLOAT_DTYPES, check_weight_dtypes

        dtypes = _header_dtypes(path)
        if name != TENSORS_FILE:
            check_weight_dtypes(dtypes, str(path))
            return
        rng_size = torch.get_rng_state().numel()
        for key, dtype in dtypes.items():
            if key.startswith("rng/"):
                shape = _header_shape(path, key)
                if dtype != "U8" or len(shape) != 1 or (key.startswith("rng/torch/") and shape[0] != rng_size):
                    raise CheckpointError(f"{path}: RNG state {key!r} is {dtype} of shape {shape}, a uint8 vector "
                                          f"is expected (a forged or corrupt checkpoint)")
            elif dtype not in FLOAT_DTYPES:
                raise CheckpointError(f"{path}: tensor {key!r} has dtype {dtype}, a floating-point type is "
                                      f"expected (a forged or corrupt checkpoint)")


def _header_dtypes(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_slice(key).get_dtype() for key in handle.keys()}
    except Exception as exc:  # safetensors raises several error types on corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _header_shape(path: Path, key: str) -> list[int]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return list(handle.get_slice(key).get_shape())


def latest_valid(root: str | os.PathLike, files: tuple[str, ...] | None = None) -> Path | None:
    """Newest checkpoint under ``root`` (a checkpoints folder) that verifies; corrupt ones are warned about."""
    for folder in reversed(list_checkpoints(root)):
        try:
            verify(folder, files)
        except CheckpointError as exc:
            log.warning("%s; falling back to the previous checkpoint", exc)
            continue
        return folder
    return None


def _checkpoints_folder_of(path: Path) -> Path | None:
    """The checkpoints folder for a run folder or a checkpoints folder, else None."""
    if (path / CHECKPOINTS).is_dir():
        return path / CHECKPOINTS
    if list_checkpoints(path) or path.name == CHECKPOINTS:
        return path
    return None


def resolve_generator_file(path: str | os.PathLike) -> Path:
    """The newest *valid* generator file for a run folder, its checkpoints folder or one checkpoint folder.

    One checkpoint folder is verified and must be valid; in a run / checkpoints folder a corrupt or
    incomplete checkpoint is skipped with a warning. A folder holding a bare ``generator.safetensors``
    (no manifest, e.g. an exported model) resolves to that file.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    if (path / MANIFEST_FILE).is_file():
        verify(path, (GENERATOR_FILE,))
        return path / GENERATOR_FILE
    root = _checkpoints_folder_of(path)
    if root is not None:
        folder = latest_valid(root, (GENERATOR_FILE,))
        if folder is not None:
            return folder / GENERATOR_FILE
    if (path / GENERATOR_FILE).is_file():
        return path / GENERATOR_FILE
    if root is not None and list_checkpoints(root):
        raise CheckpointError(f"{path}: every checkpoint is corrupt or incomplete")
    raise CheckpointError(f"{path}: no checkpoint found (expected {CHECKPOINTS}/step_*/{GENERATOR_FILE})")


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    folder: Path
    step: int
    state: dict[str, Any]
    generator_arch: str
    generator_config: dict[str, Any]
    generator_state: dict[str, torch.Tensor]
    discriminators: dict[str, dict[str, Any]] = field(default_factory=dict)   # name → {arch, config, state}
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    generator_contract: InputContract | None = None


def load_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    """Read a verified checkpoint folder (call :func:`verify` or :func:`latest_valid` first)."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / STATE_FILE}: unreadable training state ({exc})") from None
    generator = read_generator_file(folder / GENERATOR_FILE)
    discriminators = read_discriminator_set(folder / DISCRIMINATORS_FILE)
    _, tensors = read_safetensors(folder / TENSORS_FILE)
    return Checkpoint(folder, int(state.get("step", 0)), state, generator.arch, generator.config, generator.state,
                      discriminators, tensors, generator.contract)


# ------------------------------------------------------------------------------------------------
# Optimizer state ⇄ (JSON, tensors)
# ------------------------------------------------------------------------------------------------
def optimizer_to_parts(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Split ``optimizer.state_dict()`` into JSON scalars and a flat tensor dict (keys ``prefix/pid/name``)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{pid}/{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()} for group in sd["param_groups"]]
    return {"param_groups": groups, "scalars": scalars}, tensors


def optimizer_from_parts(optimizer: torch.optim.Optimizer, prefix: str, parts: dict,
                         tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, Any]] = {}
    head = prefix + "/"
    for key, value in tensors.items():
        if key.startswith(head):
            pid, name = key[len(head):].split("/", 1)
            state.setdefault(int(pid), {})[name] = value
    for pid, entries in parts.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for pid, entries in state.items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and (
                    pid >= len(params) or value.shape != params[pid].shape):
                raise CheckpointError(f"optimizer {prefix}: saved state {pid}/{name} has shape "
                                      f"{tuple(value.shape)}, the model has no such parameter there")
    groups = []
    for group in parts["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer {prefix}: saved state does not match the model ({exc})") from None


# ------------------------------------------------------------------------------------------------
# The full training state ⇄ a checkpoint
# ------------------------------------------------------------------------------------------------
class Resumable(Protocol):
    """What a training run is made of, as far as resuming it goes (:class:`posetransfer.training.build.
    TrainingParts` is one): the bare models, their optimisers and GradScalers, the image pools and the
    data loader (``state()`` / ``restore(state)``)."""

    generator: torch.nn.Module
    discriminators: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, Any]
    pools: dict[str, Any]
    loader: Any


def _rank_state(parts: Resumable, device: torch.device) -> dict[str, Any]:
    """This process's random state and image pools (each rank has its own)."""
    return {**rng_state(device), "pools": {name: pool.state_dict() for name, pool in parts.pools.items()}}


def save_training(run: str | os.PathLike, step: int, parts: Resumable, cfg: dict[str, Any], info: D.DistInfo, *,
                  data_root: str | os.PathLike | None, elapsed: float, losses: dict[str, float],
                  weights: list[dict], vgg_weights: str | os.PathLike | None = None) -> Path | None:
    """Checkpoint everything a resumed run needs at ``step``; every rank takes part, rank 0 writes and gets
    the folder (the others None). ``data_root`` / ``vgg_weights``: what a resume without them uses."""
    ranks = D.gather_objects(_rank_state(parts, info.device), info)
    if not info.is_main:
        return None
    tensors: dict[str, torch.Tensor] = {}
    optim_json = {}
    for name, optimizer in parts.optimizers.items():
        optim_json[name], optim_tensors = optimizer_to_parts(optimizer, f"optim/{name}")
        tensors.update(optim_tensors)
    rank_json = []
    for r, state in enumerate(ranks):
        tensors[f"rng/torch/{r}"] = state["torch"]
        for i, cuda_state in enumerate(state["cuda"]):
            tensors[f"rng/cuda/{r}/{i}"] = cuda_state
        pools_json = {}
        for name, (scalars, images) in state["pools"].items():
            pools_json[name] = scalars
            if images is not None:
                tensors[f"pool/{name}/{r}"] = images
        rank_json.append({"numpy": state["numpy"], "python": state["python"], "pools": pools_json,
                          "cuda_devices": len(state["cuda"])})
    state = {
        "config": cfg,
        "data_root": str(data_root) if data_root is not None else None,
        "data": parts.loader.state(),
        "optimizers": optim_json,
        "scalers": {name: scaler.state_dict() for name, scaler in parts.scalers.items()},
        "ranks": rank_json,
        "time_seconds": round(elapsed, 3),
        "losses": losses,
        "weights": weights,
        "vgg_weights": str(vgg_weights) if vgg_weights is not None else None,
    }
    # the generator file says what it was trained on: the dataset's frame and pose maps, this run and step
    contract = InputContract.for_dataset(cfg["dataset"], {"trained": str(Path(run).resolve()), "step": int(step)})
    return save_checkpoint(run, step, parts.generator, parts.discriminators, tensors, state,
                           keep_last=cfg["train"]["keep_last"], contract=contract)


def restore_training(stored: Checkpoint, parts: Resumable, info: D.DistInfo, seed: int) -> int:
    """Load weights, optimiser moments, scalers, RNG, pools and data position into ``parts``; returns the step
    to continue from. Saved by another number of processes: the random state is re-seeded (not bit-exact)."""
    _restore_weights(stored, parts)
    state, tensors = stored.state, stored.tensors
    for name, optimizer in parts.optimizers.items():
        if name in state.get("optimizers", {}):
            optimizer_from_parts(optimizer, f"optim/{name}", state["optimizers"][name], tensors)
        else:
            log.warning("%s: no optimizer state for %s; it starts fresh", stored.folder, name)
    for name, scaler in parts.scalers.items():
        if name in state.get("scalers", {}) and scaler.is_enabled():
            scaler.load_state_dict(state["scalers"][name])
    parts.loader.restore(state.get("data", {}))
    ranks = state.get("ranks", [])
    if len(ranks) != info.world_size:
        log.warning("%s was saved by %d process(es), now %d: random state re-seeded (not bit-exact)",
                    stored.folder, len(ranks), info.world_size)
        seed_everything(seed + 7919 * stored.step + info.rank)
        return stored.step
    mine, rank = ranks[info.rank], info.rank
    cuda_states = [tensors[f"rng/cuda/{rank}/{i}"] for i in range(mine.get("cuda_devices") or 0)] \
        if info.device.type == "cuda" else []
    set_rng_state(tensors[f"rng/torch/{rank}"], cuda_states, mine["numpy"], mine["python"], info.device)
    for name, pool in parts.pools.items():
        if name in mine.get("pools", {}):
            pool.load_state_dict(mine["pools"][name], tensors.get(f"pool/{name}/{rank}"), info.device)
    return stored.step


def _restore_weights(stored: Checkpoint, parts: Resumable) -> None:
    where, G = stored.folder, parts.generator
    if stored.generator_arch != G.arch:
        raise CheckpointError(f"{where}: holds a {stored.generator_arch!r} generator, the config asks for {G.arch!r}")
    try:
        G.load_state_dict(stored.generator_state, strict=True)
        for name, d in parts.discriminators.items():
            if name not in stored.discriminators:
                raise CheckpointError(f"{where}: no weights for discriminator {name!r}")
            d.load_state_dict(stored.discriminators[name]["state"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not fit the configured models ({str(exc).splitlines()[0]})") from None
