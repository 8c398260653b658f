"""Damaged checkpoint folders, without training: seeded corruption of every file of the newest checkpoint,
``*.tmp`` debris of every kind a killed writer or pruner can leave, and keep-last pruning next to a stale
checkpoint. The loaders (``latest_valid``, ``resolve_generator_file``, ``load_generator``) must never hand out
damaged data: they fall back to the previous checkpoint with a warning naming the file.
"""
from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import pytest
import torch

from posetransfer import checkpoint as ckpt
from posetransfer.errors import CheckpointError
from posetransfer.models.registry import build_discriminator, build_generator
from posetransfer.inference import load_generator
from posetransfer.modelfile import InputContract

FILES = (ckpt.GENERATOR_FILE, ckpt.DISCRIMINATORS_FILE, ckpt.TENSORS_FILE, ckpt.STATE_FILE, ckpt.MANIFEST_FILE)
DATA_FILES = FILES[:-1]


def _models(seed: int):
    torch.manual_seed(seed)
    g = build_generator("patn", ngf=8, n_blocks=1, dropout=0.0)
    d = {"appearance": build_discriminator("patn_resnet", input_nc=6, ndf=8, n_blocks=1)}
    return g, d


def _save(run: Path, step: int, keep_last: int | None = 5) -> Path:
    g, d = _models(step)
    tensors = {"optim/G/0/exp_avg": torch.randn(3, 3, generator=torch.Generator().manual_seed(step))}
    return ckpt.save_checkpoint(run, step, g, d, tensors, {"config": {"step_marker": step}}, keep_last=keep_last,
                                contract=InputContract(size=(128, 64)))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pristine") / "run"
    for step in (100, 200, 300):
        _save(run, step)
    return run


def _corrupt(path: Path, how: str, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    if how == "bitflip":
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        data = data[: rng.randrange(len(data))]
    elif how == "zero-length":
        data = bytearray()
    elif how == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif how == "same-size-noise":
        start = rng.randrange(len(data))
        for i in range(start, min(len(data), start + rng.randint(1, 4096))):
            data[i] = rng.randrange(256)
    elif how == "delete":
        path.unlink()
        return how
    path.write_bytes(bytes(data))
    return how


HOWS = ("bitflip", "truncate", "zero-length", "append", "same-size-noise", "delete")


def test_seeded_corruption_of_the_newest_checkpoint(pristine, tmp_path, caplog, tally):
    rng = random.Random(2024)
    trials = 48
    detected = harmless = 0
    reference = {step: load_generator(pristine / "checkpoints" / ckpt.step_dirname(step)).state_dict()
                 for step in (200, 300)}
    for trial in range(trials):
        run = tmp_path / f"run{trial}"
        shutil.copytree(pristine, run)
        newest = run / "checkpoints" / ckpt.step_dirname(300)
        name, how = rng.choice(FILES), rng.choice(HOWS)
        before = {f: (newest / f).read_bytes() for f in FILES}
        _corrupt(newest / name, how, rng)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="posetransfer"):
            chosen = ckpt.latest_valid(run / "checkpoints")
        data_intact = all((newest / f).is_file() and (newest / f).read_bytes() == before[f] for f in DATA_FILES)
        if chosen.name == ckpt.step_dirname(300):
            # accepted only if nothing that is loaded was damaged (e.g. a flipped bit in the manifest's "format")
            assert data_intact, f"trial {trial}: {how} of {name} was not detected"
            harmless += 1
        else:
            assert chosen.name == ckpt.step_dirname(200), (trial, name, how)
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(str(newest) in w and "previous checkpoint" in w for w in warnings), warnings
            assert all("\n" not in w for w in warnings)
            detected += 1
        # the generator loaders: the newest generator if *it* verifies, else the previous one — never damage
        generator_ok = name not in (ckpt.GENERATOR_FILE, ckpt.MANIFEST_FILE) or (
            chosen.name == ckpt.step_dirname(300))
        if name == ckpt.MANIFEST_FILE and chosen.name != ckpt.step_dirname(300):
            try:
                ckpt.verify(newest, (ckpt.GENERATOR_FILE,))
                generator_ok = True
            except CheckpointError:
                generator_ok = False
        expected_step = 300 if generator_ok else 200
        resolved = ckpt.resolve_generator_file(run)
        assert resolved.parent.name == ckpt.step_dirname(expected_step), (trial, name, how, resolved)
        loaded = load_generator(run).state_dict()
        assert all(torch.equal(loaded[k], reference[expected_step][k]) for k in loaded), (trial, name, how)
        shutil.rmtree(run)
    tally("checkpoint file corrupted (bit flip, truncation, deletion, noise, ...)", tried=trials,
          detected_and_previous_used=detected, harmless_and_verified=harmless, damaged_data_loaded=0)
    assert detected >= trials * 3 // 4


def test_debris_is_never_taken_for_a_checkpoint(pristine, tmp_path, tally):
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    root = run / "checkpoints"
    newest = root / ckpt.step_dirname(300)
    # what killed writers / pruners leave, some of it complete-looking and numbered *higher* than the newest
    shutil.copytree(newest, root / (ckpt.step_dirname(400) + ".tmp"))               # unpublished, complete
    shutil.copytree(newest, root / (ckpt.step_dirname(500) + ".old.tmp"))
    shutil.copytree(newest, root / (ckpt.step_dirname(100) + ".deleting.tmp"))
    (root / (ckpt.step_dirname(600) + ".tmp")).mkdir()                             # empty
    partial = root / (ckpt.step_dirname(700) + ".tmp")
    partial.mkdir()
    (partial / ".generator.safetensors.abc123.tmp").write_bytes(b"\x00" * 100)
    (root / ckpt.step_dirname(800)).write_text("a file, not a folder")
    (root / "step_latest").mkdir()
    (newest / ".state.json.x1y2.tmp").write_text("{")                              # debris inside a checkpoint
    assert [p.name for p in ckpt.list_checkpoints(root)] == [ckpt.step_dirname(s) for s in (100, 200, 300)]
    assert ckpt.latest_valid(root) == newest
    assert ckpt.resolve_generator_file(run) == newest / ckpt.GENERATOR_FILE
    assert ckpt.resolve_generator_file(root) == newest / ckpt.GENERATOR_FILE
    # the next save clears the folder debris and still keeps the real checkpoints
    _save(run, 900, keep_last=3)
    left = sorted(p.name for p in root.iterdir())
    assert not [n for n in left if n.endswith(".tmp")], left
    assert ckpt.latest_valid(root).name == ckpt.step_dirname(900)
    tally("*.tmp debris of killed writers/pruners", tried=6, taken_for_a_checkpoint=0)


def test_every_checkpoint_corrupt_is_a_one_line_error(pristine, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    for folder in ckpt.list_checkpoints(run / "checkpoints"):
        _corrupt(folder / ckpt.GENERATOR_FILE, "truncate", random.Random(0))
    with pytest.raises(CheckpointError) as err:
        ckpt.resolve_generator_file(run)
    assert str(run) in str(err.value) and "\n" not in str(err.value)
    from posetransfer.train import _find_resume_checkpoint

    with pytest.raises(CheckpointError, match="every checkpoint is corrupt"):
        _find_resume_checkpoint(run)


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path, tally):
    """After a fallback the run folder can hold a *newer-numbered* damaged checkpoint (the one that failed to
    verify). Saving a lower step with ``keep_last=1`` must keep the checkpoint just written (and the run must
    stay resumable); as written, prune keeps the newest *number* — the damaged one — and deletes the new one.
    """
    run = tmp_path / "run"
    _save(run, 2, keep_last=3)
    bad = _save(run, 4, keep_last=3)
    (bad / ckpt.TENSORS_FILE).write_bytes((bad / ckpt.TENSORS_FILE).read_bytes()[:100])   # torn, e.g. disk full
    assert ckpt.latest_valid(run / "checkpoints").name == ckpt.step_dirname(2)            # the resume point
    written = _save(run, 3, keep_last=1)   # e.g. the resumed run stops at --steps 3
    survivor = ckpt.latest_valid(run / "checkpoints")
    tally("keep_last pruning next to a damaged newer checkpoint", tried=1,
          just_written_checkpoint_kept=int(written.is_dir()))
    assert written.is_dir(), "prune deleted the checkpoint it had just written"
    assert survivor == written
