"""Shared pieces of the robustness tests: a tiny dataset, tiny training settings, checkpoint inspection.

Kept in one module (imported by conftest.py, the test modules and the ``faultrun.py`` driver) so that the
subprocess driver and the tests agree on the exact run configuration.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: the console script of the venv the tests run in
CLI = [str(Path(sys.executable).with_name("posetransfer"))]
if not Path(CLI[0]).exists():  # pragma: no cover - a checkout run without the console script
    CLI = [sys.executable, "-m", "posetransfer"]

#: 32×16 images: PATN (2 down-samplings) and the PATN discriminator still fit, and a step is cheap.
SIZE = (32, 16)
PRESET = "patn-market"
CHECKPOINT_EVERY = 2


def tiny_overrides(steps: int, checkpoint_every: int = CHECKPOINT_EVERY, keep_last: int = 3,
                   workers: int = 0, pool_size: int = 4) -> list[str]:
    """``--set`` values for a tiny, deterministic CPU run of the patn-market preset.

    Dropout stays at the preset's 0.5 on purpose: a resumed run can only match an uninterrupted one if the
    random state is restored too.
    """
    sets = [
        "model.ngf=8", "model.n_blocks=1",
        "train.batch_size=2", f"train.workers={workers}", f"train.checkpoint_every={checkpoint_every}",
        "train.image_every=100000", "train.log_every=1", "train.amp=false", "train.device=cpu",
        f"train.keep_last={keep_last}", "loss.perceptual=0", f"loss.pool_size={pool_size}",
        f"optim.iterations={steps}", f"optim.decay_start={steps // 2}",
        f"dataset.size=[{SIZE[0]},{SIZE[1]}]",
    ]
    for d in ("appearance", "shape"):
        sets += [f"discriminators.{d}.ndf=8", f"discriminators.{d}.n_blocks=1"]
    return sets


def cli_set_args(sets: list[str]) -> list[str]:
    out: list[str] = []
    for item in sets:
        out += ["--set", item]
    return out


def make_tiny_dataset(out: Path, identities: int = 3, poses: int = 3, seed: int = 0) -> Path:
    """A synthetic PATN-layout dataset (posetransfer.data.synth) shrunk to 32×16 with rescaled keypoints."""
    from PIL import Image

    from posetransfer.data import keypoints as K
    from posetransfer.kinds import MARKET
    from posetransfer.data.synth import generate_dataset
    from posetransfer.io import read_image, save_image

    full = Path(generate_dataset(out.with_name(out.name + "-full"), size="market", identities=identities,
                                 poses=poses, test_identities=1, seed=seed))
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        annotations = K.read_annotations(full / f"market-annotation-{split}.csv")
        small = {}
        for name, kp in annotations.items():
            image = Image.fromarray(read_image(full / split / name)).resize((SIZE[1], SIZE[0]), Image.BILINEAR)
            save_image(out / split / name, np.asarray(image))
            small[name] = K.rescale_keypoints(kp, MARKET.size, SIZE)
        K.write_annotations(out / f"market-annotation-{split}.csv", small)
        shutil.copy(full / f"market-pairs-{split}.csv", out / f"market-pairs-{split}.csv")
    (out / "dataset.json").write_text(json.dumps({"kind": "market", "size": list(SIZE), "synthetic": True}))
    shutil.rmtree(full)
    return out


def clean_env() -> dict[str, str]:
    """Environment of every training subprocess: one thread (bit-exact comparisons), offline."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "POSETRANSFER_OFFLINE": "1",
                "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"})
    return env


def run_cli(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


def run_driver(plan: dict, work: Path, timeout: float = 600) -> dict:
    """Run faultrun.py on ``plan`` in a fresh process (logs in ``work``); returns its result JSON."""
    plan = {"work": str(work), **plan}
    plan_path, result_path = work / "plan.json", work / "result.json"
    plan_path.write_text(json.dumps(plan))
    proc = subprocess.run([sys.executable, str(HERE / "faultrun.py"), str(plan_path), str(result_path)],
                          capture_output=True, text=True, timeout=timeout, env=clean_env())
    assert proc.returncode == 0, f"driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(result_path.read_text())


# ---------------------------------------------------------------------------------------------------
# Checkpoint inspection (what a kill may and may not leave behind)
# ---------------------------------------------------------------------------------------------------
_STEP = re.compile(r"^step_(\d+)$")


def inspect_run(run: Path) -> dict:
    """Checkpoints of a run: listed steps, which verify, the newest valid one, ``*.tmp`` debris."""
    from posetransfer import checkpoint as ckpt
    from posetransfer.errors import CheckpointError

    root = ckpt.checkpoints_root(run)
    listed = ckpt.list_checkpoints(root)
    invalid = []
    for folder in listed:
        try:
            ckpt.verify(folder)
        except CheckpointError as exc:
            invalid.append(f"{folder.name}: {exc}")
    latest = ckpt.latest_valid(root)
    debris = sorted(p.name for p in root.iterdir() if p.name.endswith(".tmp")) if root.is_dir() else []
    return {
        "listed": [int(_STEP.match(p.name).group(1)) for p in listed],
        "invalid": invalid,
        "latest": int(_STEP.match(latest.name).group(1)) if latest is not None else None,
        "debris": debris,
    }


def checkpoint_tensors(folder: Path) -> dict[str, "object"]:
    """Every tensor of a checkpoint (generator, discriminators, optimizer/RNG/pool state), flat."""
    from posetransfer import checkpoint as ckpt

    loaded = ckpt.load_checkpoint(folder)
    flat = {f"G/{k}": v for k, v in loaded.generator_state.items()}
    for name, info in loaded.discriminators.items():
        flat.update({f"D/{name}/{k}": v for k, v in info["state"].items()})
    flat.update({f"T/{k}": v for k, v in loaded.tensors.items()})
    return flat


def nonfinite_tensors(folder: Path) -> list[str]:
    """Names of the floating-point tensors of a checkpoint holding NaN or inf."""
    import torch

    return [k for k, v in checkpoint_tensors(folder).items()
            if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def inspect_run_deep(run: Path) -> dict:
    """:func:`inspect_run` plus, per listed checkpoint that verifies, its non-finite tensors."""
    info = inspect_run(run)
    invalid = {entry.split(":")[0] for entry in info["invalid"]}
    info["nonfinite"] = {str(step): nonfinite_tensors(run / "checkpoints" / f"step_{step:08d}")
                         for step in info["listed"] if f"step_{step:08d}" not in invalid}
    return info


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Bit-for-bit equal tensors and the same data position / optimizer scalars."""
    import torch

    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert sorted(ta) == sorted(tb), f"{a} and {b} hold different tensors"
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{len(different)} tensors differ between {a} and {b}, e.g. {different[:3]}"
    sa = json.loads((a / "state.json").read_text())
    sb = json.loads((b / "state.json").read_text())
    for key in ("step", "data", "optimizers", "ranks"):
        assert sa[key] == sb[key], f"state.json {key} differs between {a} and {b}"
