"""save_generator / load_generator round trips for every architecture; wrong-architecture errors."""
from __future__ import annotations

import pytest
import torch

import posetransfer
from posetransfer.errors import CheckpointError
from posetransfer.models.registry import build_generator
from posetransfer.modelfile import save_generator

TINY = {
    "patn": {"dataset": "market", "ngf": 8, "n_blocks": 2},
    "apatn": {"dataset": "market", "ngf": 8, "n_blocks": 2},
    "pona": {"dataset": "deepfashion", "ngf": 8, "n_blocks": 2},
    "resnet": {"dataset": "market", "ngf": 8, "n_blocks": 2},
}


@pytest.mark.parametrize("arch", sorted(TINY))
def test_round_trip_gives_identical_outputs(arch, tmp_path, inputs):
    g = build_generator(arch, **TINY[arch])
    # move the batch-norm running statistics away from their defaults so they are part of the check
    g.train()
    with torch.no_grad():
        g(*inputs("market"))
    g.eval()
    path = tmp_path / f"{arch}.safetensors"
    save_generator(g, path)
    loaded = posetransfer.load_generator(path)
    assert loaded.arch == arch and loaded.config == g.config
    assert not loaded.training
    image, src, tgt = inputs("market", batch=1)
    with torch.no_grad():
        assert torch.equal(g(image, src, tgt), loaded(image, src, tgt))


def test_wrong_architecture_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator(build_generator("patn", **TINY["patn"]), path)
    with pytest.raises(CheckpointError, match="g.safetensors.*'patn'.*'pona'"):
        posetransfer.load_generator(path, arch="pona")


def test_not_a_generator_file_names_the_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        posetransfer.load_generator(path)
