"""Shared fixtures of the application tests: a tiny synthetic Market-style dataset, a tiny PATN checkpoint
trained on it for two steps, real photos."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers of these tests: apps_support.py
from apps_support import TINY_MODEL  # noqa: E402

from posetransfer.io import save_image  # noqa: E402


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    from posetransfer.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    return Path(generate_dataset(root / "data", size="market", identities=5, poses=3, test_identities=2, seed=0))


def _train_tiny(data: Path, out: Path) -> Path:
    """Two training steps through the trainer API (``posetransfer.train.train``)."""
    from posetransfer.config import load_config
    from posetransfer.train import train

    overrides = [f"model.{k}={v}" for k, v in TINY_MODEL.items()] + [
        f"discriminators.{d}.{k}={v}" for d in ("appearance", "shape") for k, v in (("ndf", 8), ("n_blocks", 1))
    ] + [
        "train.batch_size=2", "train.workers=0", "train.checkpoint_every=2", "train.image_every=1000",
        "train.log_every=1", "train.amp=false", "train.device=cpu", "loss.perceptual=0",
        "optim.iterations=2", "optim.decay_start=1",
    ]
    train(load_config("patn-market", overrides=overrides), data, out, steps=2, progress=False)
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, synth_data) -> Path:
    """A tiny PATN generator file in a real checkpoint folder, trained for two steps on ``synth_data``."""
    from posetransfer.checkpoint import resolve_generator_file

    run = _train_tiny(synth_data, tmp_path_factory.mktemp("ckpt") / "run")
    return Path(resolve_generator_file(run))


@pytest.fixture(scope="session")
def other_arch_checkpoint(tmp_path_factory) -> Path:
    from posetransfer.models.registry import build_generator
    from posetransfer.modelfile import InputContract, save_generator

    model = build_generator("resnet", ngf=8, n_blocks=1)
    path = tmp_path_factory.mktemp("other") / "resnet_tiny.safetensors"
    save_generator(model, path, InputContract(size=(128, 64)))
    return path


@pytest.fixture(scope="session")
def astronaut_jpg(tmp_path_factory) -> Path:
    """A real photo from an installed package (scikit-image's astronaut)."""
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    save_image(path, data.astronaut())
    return path


@pytest.fixture(scope="session")
def bus_jpg() -> Path:
    """ultralytics' bus.jpg (people standing), located without importing ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics assets not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "bus.jpg"
    if not path.is_file():
        pytest.skip("ultralytics/assets/bus.jpg not found")
    return path


