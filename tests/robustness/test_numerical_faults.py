"""NaN / inf during training: the run stops with the step number, the last good checkpoint is kept (and is
really good: finite), and ``--resume`` continues from it to the same result as a run that never failed.

AMP: the trainer only enables autocast + ``GradScaler`` on CUDA (``use_amp = train.amp and device is cuda``);
on CPU both are off, so there is no scaler step-skipping to test here (see docs/robustness.md). What a
scaler does on CUDA — skip the optimizer step when a gradient is inf/NaN — is checked on CPU for the plain
fp32 path by ``test_nan_gradient_never_reaches_a_checkpoint``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import faultlib
import pytest

STEPS = 10


def _argv(data: Path, out: Path, steps: int = STEPS, extra: tuple[str, ...] = (), resume: bool = False) -> list[str]:
    return ["train", "--preset", faultlib.PRESET, "--data", str(data), "--out", str(out), "--steps", str(steps),
            "--no-progress", *(["--resume"] if resume else []),
            *faultlib.cli_set_args(faultlib.tiny_overrides(STEPS)), *extra]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """All numerical-fault runs in one driver process (forked children; see faultrun.py)."""
    work = tmp_path_factory.mktemp("numerical")
    jobs = [
        # a learning rate that makes the weights explode (a real divergence, no injection), after 4 good steps
        {"name": "blowup_start", "argv": _argv(tiny_data, work / "blowup", steps=4)},
        {"name": "blowup", "argv": _argv(tiny_data, work / "blowup", resume=True, extra=("--set", "optim.lr=1e30")),
         "inspect": str(work / "blowup")},
        {"name": "blowup_resume", "argv": _argv(tiny_data, work / "blowup", resume=True)},
        {"name": "reference", "argv": _argv(tiny_data, work / "reference")},
        # injected: the generator's L1 term is NaN at step 5, the discriminator loss is inf at step 3
        {"name": "nan_g", "argv": _argv(tiny_data, work / "nan_g"), "inspect": str(work / "nan_g"),
         "faults": [{"kind": "nan", "target": "posetransfer.training.step.l1", "nth": 5}]},
        {"name": "inf_d", "argv": _argv(tiny_data, work / "inf_d"), "inspect": str(work / "inf_d"),
         "faults": [{"kind": "nan", "target": "posetransfer.training.step.discriminator_adversarial", "nth": 3,
                     "value": "inf"}]},
        # a finite loss but a NaN gradient in the G step of step 4 (a checkpoint step): G's _clip call of step k
        # is call 3(k-1)+1 (one G and two D optimizer steps per iteration)
        {"name": "nan_grad", "argv": _argv(tiny_data, work / "nan_grad"), "inspect": str(work / "nan_grad"),
         "faults": [{"kind": "nan_grad", "nth": 3 * (4 - 1) + 1}]},
    ]
    return work, faultlib.run_driver({"mode": "jobs", "jobs": jobs}, work)


def _error_line(log: str) -> str:
    lines = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, log
    return lines[0]


def _check_stopped(work: Path, result: dict, run: str, step: int, loss: str, last_good: int, tally, label: str):
    assert result["exit"] == 2, result["log"]
    line = _error_line(result["log"])
    assert re.search(rf"step {step}: loss '{loss}' is (nan|inf|-inf)", line), line
    folder = work / run / "checkpoints" / f"step_{last_good:08d}"
    assert f"last good checkpoint: {folder}" in line, line
    info = result["after"]
    assert info["latest"] == last_good and info["invalid"] == [] and max(info["listed"]) == last_good, info
    assert not any(info["nonfinite"].values()), info["nonfinite"]
    summary = json.loads((work / run / "summary.json").read_text())
    assert summary["status"] == "failed" and f"step {step}" in summary["error"]
    assert summary["checkpoint"].endswith(f"step_{last_good:08d}")
    tally(label, tried=1, stopped_with_step=1, max_lost_steps=result["completed"] - last_good)


def test_divergence_stops_with_the_step_and_resume_recovers(runs, tally):
    work, results = runs
    assert results["blowup_start"]["exit"] == 0
    blowup = results["blowup"]
    assert blowup["exit"] == 2 and blowup["first"] == 4
    line = _error_line(blowup["log"])
    step = int(re.search(r"step (\d+): loss '\w+' is (nan|inf)", line).group(1))
    assert step > 4
    # nothing was saved after the divergence (checkpoint_every=2): what is on disk verifies and is finite
    info = blowup["after"]
    assert info["invalid"] == [] and info["latest"] == 4 and not any(info["nonfinite"].values()), info
    last_good = work / "blowup" / "checkpoints" / f"step_{info['latest']:08d}"
    assert f"last good checkpoint: {last_good}" in line
    # resuming without the bad override continues from the last good checkpoint to the normal result
    assert results["blowup_resume"]["exit"] == 0 and results["blowup_resume"]["first"] == info["latest"]
    faultlib.assert_same_checkpoint(work / "reference" / "checkpoints" / f"step_{STEPS:08d}",
                                    work / "blowup" / "checkpoints" / f"step_{STEPS:08d}")
    tally("loss diverges to NaN (lr=1e30 on resume)", tried=1, stopped_with_step=1,
          max_lost_steps=blowup["completed"] - info["latest"])


def test_nan_generator_loss(runs, tally):
    work, results = runs
    _check_stopped(work, results["nan_g"], "nan_g", 5, "l1", 4, tally, "NaN in a generator loss term")


def test_inf_discriminator_loss(runs, tally):
    work, results = runs
    _check_stopped(work, results["inf_d"], "inf_d", 3, "D", 2, tally, "inf in the discriminator loss")


def test_nan_gradient_never_reaches_a_checkpoint(runs, tally):
    """A finite loss with a NaN gradient (what GradScaler would skip on CUDA): the NaN weights must not be
    saved as a checkpoint — the run must stop naming a checkpoint whose weights are finite.

    Fails with the trainer as written: the loss check runs before backward only, so the NaN weights of step 4
    are checkpointed and then reported as the "last good checkpoint" when step 5's loss is NaN; ``--resume``
    then fails again forever. See the coordinator notes in docs/robustness.md.
    """
    work, results = runs
    result = results["nan_grad"]
    assert result["exit"] == 2, result["log"]
    bad = {step: names for step, names in result["after"]["nonfinite"].items() if names}
    tally("NaN gradient with a finite loss", tried=1, nan_checkpoints_written=len(bad))
    assert not bad, f"checkpoints with non-finite tensors: { {k: v[:3] for k, v in bad.items()} }"
    line = _error_line(result["log"])
    assert "step 4" in line or "step 5" in line
