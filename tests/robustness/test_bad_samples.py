"""Corrupt, truncated and vanishing images in the middle of an epoch.

Policy (``dataset.on_bad_sample``; the issue asks for a ``--on-bad-sample fail|skip`` flag of ``posetransfer
train``): ``fail`` stops with a one-line error naming the file (the last checkpoint is kept); ``skip`` logs
each bad file once, serves the next good pair instead (never a zero image), and lists/counts the bad files
in ``summary.json``.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import faultlib
import pytest
import torch

from posetransfer.data import keypoints as K
from posetransfer.data.dataset import PairDataset
from posetransfer.errors import DataError
from posetransfer.io import image_to_tensor_range, read_image

STEPS = 30


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> Path:
    """2 train identities × 4 poses (24 pairs) at 32×16."""
    return faultlib.make_tiny_dataset(tmp_path_factory.mktemp("bad") / "data", identities=3, poses=4, seed=3)


def _train_names(root: Path) -> list[str]:
    return sorted(K.read_annotations(root / "market-annotation-train.csv"))


def _victims(root: Path) -> dict[str, str]:
    """Two bad files per identity, so that each identity keeps one good pair in each direction."""
    names = _train_names(root)
    by_id: dict[str, list[str]] = {}
    for name in names:
        by_id.setdefault(name[:4], []).append(name)
    (a0, a1, *_), (b0, b1, *_) = by_id.values()
    return {"truncated": a0, "garbage": a1, "unlinked": b0, "garbled": b1}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _break_up_front(root: Path, victims: dict[str, str]) -> None:
    data = (root / "train" / victims["truncated"]).read_bytes()
    (root / "train" / victims["truncated"]).write_bytes(data[: len(data) // 2])
    (root / "train" / victims["garbage"]).write_bytes(b"\x89PNG\r\n\x1a\n but not really")


# ---------------------------------------------------------------------------------------------------------------
# PairDataset
# ---------------------------------------------------------------------------------------------------------------
def test_skip_serves_only_real_images_and_warns_once_per_file(bad_data, tmp_path, caplog, tally):
    root = _copy(bad_data, tmp_path / "data")
    victims = _victims(root)
    _break_up_front(root, victims)
    ds = PairDataset(root, "train", on_bad_sample="skip")
    (root / "train" / victims["unlinked"]).unlink()                          # vanishes after start-up
    (root / "train" / victims["garbled"]).write_bytes(b"\xff\xd8\xff\xe0 not a JPEG any more")
    caplog.set_level(logging.WARNING, logger="posetransfer")
    served = 0
    for _epoch in range(2):
        for index in range(len(ds)):
            item = ds[index]
            for role in ("source", "target"):
                name = item[f"{role}_name"]
                assert name not in victims.values()
                expected = torch.from_numpy(image_to_tensor_range(read_image(root / "train" / name)))
                assert torch.equal(item[f"{role}_image"], expected)      # the real pixels, not a placeholder
                assert item[f"{role}_image"].abs().sum() > 0
            served += 1
    assert ds.bad_samples == set(victims.values())
    for name in victims.values():
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "\n" not in warnings[0].getMessage()
    tally("bad image (PairDataset, skip)", tried=len(victims), logged_once=len(victims), zero_images_served=0)


@pytest.mark.parametrize("fault", ["truncated", "garbage", "unlinked", "garbled"])
def test_fail_names_the_file_in_one_line(bad_data, tmp_path, fault, tally):
    root = _copy(bad_data, tmp_path / "data")
    victim = _victims(root)[fault]
    path = root / "train" / victim
    ds = PairDataset(root, "train", on_bad_sample="fail")
    if fault == "unlinked":
        path.unlink()
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(b"garbage")
    index = next(i for i, pair in enumerate(ds.pairs) if victim in pair)
    with pytest.raises(DataError) as err:
        ds[index]
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    tally("bad image (PairDataset, fail)", tried=1, one_line_error_naming_file=1)


def test_missing_at_start_up(bad_data, tmp_path):
    root = _copy(bad_data, tmp_path / "data")
    victim = _train_names(root)[0]
    (root / "train" / victim).unlink()
    with pytest.raises(DataError, match=victim):
        PairDataset(root, "train", on_bad_sample="fail")
    ds = PairDataset(root, "train", on_bad_sample="skip")
    assert ds.bad_samples == {victim} and all(victim not in pair for pair in ds.pairs)


# ---------------------------------------------------------------------------------------------------------------
# posetransfer train
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_runs(bad_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("badtrain")
    jobs, setups = [], {}
    for name, workers, policy in (("skip_w0", 0, ["--set", "dataset.on_bad_sample=skip"]),
                                  ("skip_w1", 1, ["--set", "dataset.on_bad_sample=skip"]),
                                  ("fail_set", 0, ["--set", "dataset.on_bad_sample=fail"]),
                                  ("fail_flag", 0, ["--on-bad-sample", "fail"])):
        root = _copy(bad_data, work / f"data_{name}")
        victims = _victims(root)
        skip = name.startswith("skip")
        if skip:
            _break_up_front(root, victims)
        faults = [{"kind": "unlink", "at_step": 3, "files": [str(root / "train" / victims["unlinked"])]},
                  {"kind": "garble", "at_step": 3, "files": [str(root / "train" / victims["garbled"])]}]
        argv = ["train", "--preset", faultlib.PRESET, "--data", str(root), "--out", str(work / name),
                "--steps", str(STEPS), "--no-progress",
                *faultlib.cli_set_args(faultlib.tiny_overrides(STEPS, workers=workers)), *policy]
        jobs.append({"name": name, "argv": argv, "faults": faults, "inspect": str(work / name)})
        setups[name] = victims if skip else {k: victims[k] for k in ("unlinked", "garbled")}
    return work, setups, faultlib.run_driver({"mode": "jobs", "jobs": jobs}, work)


@pytest.mark.parametrize("name", ["skip_w0", "skip_w1"])
def test_train_skip_counts_bad_files_in_the_summary(train_runs, name, tally):
    """Workers 0 and 1: with DataLoader workers the bad files are found in the worker processes — they must
    still reach summary.json and be logged once (fails with workers=1 as written; see docs/robustness.md)."""
    work, setups, results = train_runs
    result, victims = results[name], setups[name]
    assert result["exit"] == 0, result["log"]
    summary = json.loads((work / name / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == STEPS
    log = (work / name / "train.log").read_text()
    counts = {v: sum(1 for line in log.splitlines() if "WARNING" in line and v in line) for v in victims.values()}
    tally(f"bad images mid-run, skip (workers={name[-1]})", tried=len(victims),
          counted_in_summary=len(set(summary["bad_samples"]) & set(victims.values())),
          max_warnings_per_file=max(counts.values()))
    assert sorted(summary["bad_samples"]) == sorted(victims.values()), summary["bad_samples"]
    assert summary["bad_samples_skipped"] == len(victims)
    assert all(n == 1 for n in counts.values()), counts


@pytest.mark.parametrize("name", ["fail_set", "fail_flag"])
def test_train_fail_stops_naming_the_file_and_keeps_the_checkpoint(train_runs, name, tally):
    """``fail`` (``--set dataset.on_bad_sample=fail``, and the ``--on-bad-sample fail`` flag the issue asks for:
    not in ``posetransfer train`` yet)."""
    work, setups, results = train_runs
    result, victims = results[name], setups[name]
    errors = [line for line in result["log"].splitlines() if line.startswith("error: ")]
    tally(f"bad image mid-run, fail ({'flag' if name == 'fail_flag' else '--set'})", tried=1,
          stopped_naming_file=int(result["exit"] == 2 and len(errors) == 1
                                  and any(v in errors[0] for v in victims.values())))
    assert result["exit"] == 2, result["log"]
    assert len(errors) == 1 and any(str(Path(v).name) in errors[0] for v in victims.values()), result["log"]
    info = result["after"]
    assert info["latest"] is not None and info["invalid"] == []     # the last checkpoint before the fault is kept
    assert info["latest"] >= 2
    # the run summary must not claim success for a run that stopped on a bad file
    summary = json.loads((work / name / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] < STEPS, summary
    assert any(v in (summary["error"] or "") for v in victims.values()), summary["error"]
