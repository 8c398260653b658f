"""Checkpoint folders: atomic layout with checksums, newest-valid resolution, corruption fallback, pruning."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from posetransfer import checkpoint as C
from posetransfer.errors import CheckpointError
from posetransfer.models.registry import build_discriminator, build_generator
from posetransfer.inference import load_generator
from posetransfer.modelfile import InputContract


def tiny_models(seed: int = 0):
    torch.manual_seed(seed)
    g = build_generator("patn", ngf=8, n_blocks=1, norm="instance", dropout=0.0)
    d = build_discriminator("patn_resnet", input_nc=6, ndf=8, n_blocks=1, norm="instance", dropout=0.0)
    return g, {"appearance": d}


def save(run, step, seed=None, keep_last=None):
    g, ds = tiny_models(step if seed is None else seed)
    tensors = {"optim/G/0/exp_avg": torch.full((3,), float(step)), "rng/torch/0": torch.get_rng_state()}
    return C.save_checkpoint(run, step, g, ds, tensors, {"config": {"name": "t"}, "note": step}, keep_last,
                             contract=InputContract(size=(128, 64), provenance={"trained": str(run), "step": step}))


def test_layout_manifest_and_roundtrip(tmp_path):
    folder = save(tmp_path, 7)
    assert folder == tmp_path / "checkpoints" / "step_00000007"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [C.GENERATOR_FILE, C.DISCRIMINATORS_FILE, C.TENSORS_FILE, C.STATE_FILE, C.MANIFEST_FILE])
    manifest = C.verify(folder)
    assert manifest["step"] == 7 and set(manifest["files"]) == {C.GENERATOR_FILE, C.DISCRIMINATORS_FILE,
                                                                C.TENSORS_FILE, C.STATE_FILE}
    loaded = C.load_checkpoint(folder)
    g, ds = tiny_models(7)
    assert loaded.step == 7 and loaded.state["note"] == 7 and loaded.generator_arch == "patn"
    assert all(torch.equal(loaded.generator_state[k], v) for k, v in g.state_dict().items())
    assert all(torch.equal(loaded.discriminators["appearance"]["state"][k], v)
               for k, v in ds["appearance"].state_dict().items())
    assert loaded.discriminators["appearance"]["config"]["input_nc"] == 6
    assert torch.equal(loaded.tensors["optim/G/0/exp_avg"], torch.full((3,), 7.0))
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_resolve_generator_file_accepts_run_checkpoints_and_one_checkpoint(tmp_path):
    save(tmp_path, 1)
    newest = save(tmp_path, 2)
    for path in (tmp_path, tmp_path / "checkpoints"):
        assert C.resolve_generator_file(path) == newest / C.GENERATOR_FILE
    first = tmp_path / "checkpoints" / "step_00000001"
    assert C.resolve_generator_file(first) == first / C.GENERATOR_FILE
    model = load_generator(tmp_path)                   # the registry goes through resolve_generator_file
    g, _ = tiny_models(2)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in g.state_dict().items())


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupt_newest_checkpoint_falls_back_to_previous_with_a_warning(tmp_path, caplog, damage):
    previous = save(tmp_path, 1)
    newest = save(tmp_path, 2)
    victim = newest / C.GENERATOR_FILE
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        victim.unlink()
    caplog.set_level(logging.WARNING, logger="posetransfer.checkpoint")
    assert C.resolve_generator_file(tmp_path) == previous / C.GENERATOR_FILE
    assert any("step_00000002" in r.getMessage() for r in caplog.records)
    assert C.latest_valid(tmp_path / "checkpoints") == previous
    with pytest.raises(CheckpointError, match="step_00000002"):
        C.resolve_generator_file(newest)       # asked for that one checkpoint explicitly: an error


def test_damaged_state_file_is_detected_too(tmp_path):
    previous = save(tmp_path, 1)
    newest = save(tmp_path, 2)
    state = newest / C.STATE_FILE
    state.write_text(state.read_text().replace('"note": 2', '"note": 3'))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        C.verify(newest)
    assert C.latest_valid(tmp_path / "checkpoints") == previous


def test_unfinished_folders_are_ignored_and_every_corrupt_checkpoint_is_an_error(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step_00000009.tmp").mkdir(parents=True)          # a writer killed before its rename
    (root / "step_00000009.tmp" / C.GENERATOR_FILE).write_bytes(b"partial")
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        C.resolve_generator_file(tmp_path)
    only = save(tmp_path, 3)
    assert C.resolve_generator_file(tmp_path) == only / C.GENERATOR_FILE
    (only / C.MANIFEST_FILE).unlink()
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        C.resolve_generator_file(tmp_path)


def test_keep_last_prunes_old_checkpoints_and_debris(tmp_path):
    (tmp_path / "checkpoints" / "step_00000000.tmp").mkdir(parents=True)
    for step in range(1, 6):
        save(tmp_path, step, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000004", "step_00000005"]


def test_resaving_a_step_replaces_it_atomically(tmp_path):
    save(tmp_path, 4, seed=1)
    folder = save(tmp_path, 4, seed=2)
    C.verify(folder)
    g, _ = tiny_models(2)
    assert torch.equal(C.load_checkpoint(folder).generator_state["stream1_up.7.weight"],
                       g.state_dict()["stream1_up.7.weight"])


def test_optimizer_state_roundtrip_through_json_and_tensors():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    parts, tensors = C.optimizer_to_parts(opt, "optim/G")
    parts = json.loads(json.dumps(parts))                   # must survive JSON
    fresh = torch.optim.Adam(model.parameters(), lr=5.0)
    C.optimizer_from_parts(fresh, "optim/G", parts, tensors)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 1e-3
    assert tuple(b["param_groups"][0]["betas"]) == (0.5, 0.999)
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][pid][key]))
    wrong = torch.optim.Adam(torch.nn.Linear(5, 5).parameters())
    with pytest.raises(CheckpointError, match="optim/G"):
        C.optimizer_from_parts(wrong, "optim/G", parts, tensors)
