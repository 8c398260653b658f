"""SIGKILL during training, then ``--resume``: the newest valid checkpoint always loads, at most the steps since
it are lost, ``*.tmp`` debris is never taken for a checkpoint, a corrupted checkpoint is detected and the
previous one used with a warning — and the killed-and-resumed run ends bit-for-bit where an uninterrupted
run ends (nothing else was lost or damaged).

Two campaigns:

* ``test_seeded_kill_points``: a seeded list of kill points (during a step, inside every stage of a
  checkpoint write, while pruning old checkpoints, at random times, after corrupting the newest checkpoint)
  injected into ``posetransfer train`` children of the faultrun.py driver, one run folder resumed after each;
* ``test_console_script_killed_at_random_times``: the installed ``posetransfer`` console script as separate
  processes, SIGKILLed from outside at seeded random moments after training started, then resumed.
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import faultlib

STEPS = 64
CE = faultlib.CHECKPOINT_EVERY
KEEP = 3

#: (label, fault factory(rng)) — the label is the row of the table in docs/robustness.md
KILL_POINTS = {
    "kill at the start of a step": lambda r: {"kind": "call", "target": "posetransfer.train.learning_rate",
                                              "nth": r.randint(1, 4)},
    "kill after forward, before backward": lambda r: {"kind": "call", "target": "posetransfer.training.step._check_finite",
                                                      "nth": r.randint(1, 7)},
    "kill after backward, before optimizer step": lambda r: {"kind": "call", "target": "posetransfer.training.step._clip",
                                                             "nth": r.randint(1, 9)},
    "kill mid-write of a safetensors file (torn file)": lambda r: {"kind": "partial", "nth": r.randint(1, 6),
                                                                   "fraction": round(r.uniform(0.02, 0.98), 3)},
    "kill before an atomic file rename": lambda r: {"kind": "replace", "nth": r.randint(1, 10)},
    "kill while hashing checkpoint files (verify on resume / manifest on save)": lambda r: {
        "kind": "call", "target": "posetransfer.checkpoint.sha256_file", "nth": r.randint(1, 8)},
    "kill before state.json / manifest.json is written": lambda r: {
        "kind": "call", "target": "posetransfer.checkpoint.write_json", "nth": r.randint(1, 4)},
    "kill before publishing step_X.tmp -> step_X": lambda r: {"kind": "publish", "nth": r.randint(1, 2)},
    "kill while deleting an old checkpoint": lambda r: {"kind": "prune", "nth": r.randint(1, 2)},
    "kill at a random time": lambda r: {"kind": "timer", "delay": round(r.uniform(0.0, 0.3), 3)},
}
CORRUPT_LABEL = "newest checkpoint corrupted, then resume"
CHECKPOINT_FILES = ("generator.safetensors", "discriminators.safetensors", "training_state.safetensors",
                    "state.json", "manifest.json")


def make_plan(seed: int, repeats: int) -> list[dict]:
    """``repeats`` trials of every kill point in a seeded order, with ``repeats + 1`` corruption trials spread
    over the later part of the run (so that an older valid checkpoint exists to fall back to)."""
    rng = random.Random(seed)
    trials = [{"label": label, "faults": [factory(rng)]}
              for label, factory in KILL_POINTS.items() for _ in range(repeats)]
    rng.shuffle(trials)
    gap = len(trials) // (repeats + 2)
    for k in range(repeats + 1, 0, -1):
        trials.insert(k * gap + rng.randint(-1, 1), {
            "label": CORRUPT_LABEL,
            "corrupt": {"file": rng.choice(CHECKPOINT_FILES), "mode": rng.choice(["bitflip", "truncate"]),
                        "seed": rng.randrange(2**31)},
            "faults": [KILL_POINTS["kill at the start of a step"](rng)]})
    return trials


def test_seeded_kill_points(driver, tiny_data, tmp_path, tally):
    trials = make_plan(seed=1234, repeats=3)
    result = driver({"mode": "campaign", "data": str(tiny_data), "steps": STEPS, "checkpoint_every": CE,
                     "keep_last": KEEP, "run": str(tmp_path / "run"), "reference": str(tmp_path / "ref"),
                     "trials": trials})
    ref = result["reference"]
    assert ref["exit"] == 0 and ref["latest"] == STEPS, ref["log"]

    resume_point, corrupted_by_us = 0, set()
    for trial, got in zip(trials, result["trials"]):
        label, where = trial["label"], f"{trial} → {got['after']}\n{got['log'][-1500:]}"
        corrupted = got["corrupted"]
        expected_start = resume_point
        if corrupted and not corrupted["skipped"]:
            bad = got["before"]["invalid"]
            if corrupted["file"] != "manifest.json":
                assert bad, f"corruption of {corrupted} was not detected: {where}"
            if bad:   # detected: the previous checkpoint is used, with a warning naming the bad file/folder
                expected_start = corrupted["previous"]
                assert "falling back to the previous checkpoint" in got["log"], where
                assert f"step_{corrupted['step']:08d}" in got["log"], where
            else:     # an irrelevant manifest byte (e.g. in "format"): every data file still verifies
                expected_start = corrupted["step"]
        # the child resumed from the newest valid checkpoint (first is None: killed before its first step)
        assert got["first"] in (expected_start, None), where
        assert got["killed"], f"the fault never fired (the run ended first?): {where}"
        completed = got["completed"] if got["completed"] is not None else expected_start
        after = got["after"]
        # a kill never leaves a published checkpoint that does not verify (only the ones this test corrupted
        # stay invalid until the run writes that step again), and debris is never listed
        if corrupted and not corrupted["skipped"]:
            corrupted_by_us.add(f"step_{corrupted['step']:08d}")
        invalid = {entry.split(":")[0] for entry in after["invalid"]}
        assert invalid <= corrupted_by_us, where
        corrupted_by_us &= invalid
        assert all(name.endswith(".tmp") for name in after["debris"]), where
        valid = [step for step in after["listed"] if f"step_{step:08d}" not in invalid]
        assert after["latest"] == max(valid, default=None), where
        newest = after["latest"] or 0
        lost = completed - newest
        assert 0 <= lost <= CE, f"{lost} steps lost (bound: {CE} = checkpoint_every): {where}"
        resume_point = newest
        tally(label, tried=1, killed=int(got["killed"]), max_lost_steps=lost,
              tmp_debris_at_resume=int(bool(after["debris"])),
              corrupt_applied=int(bool(corrupted and not corrupted["skipped"])),
              corrupt_detected=int(bool(corrupted and not corrupted["skipped"] and got["before"]["invalid"])),
              redone_after_fallback=(corrupted["step"] - corrupted["previous"])
              if corrupted and not corrupted["skipped"] and got["before"]["invalid"] else 0)

    final = result["final"]
    assert final["exit"] == 0 and final["first"] == resume_point, final["log"]
    assert final["latest"] == STEPS and final["debris"] == [] and final["invalid"] == []
    # nothing else was lost: the killed/resumed run ends exactly where the uninterrupted one does
    faultlib.assert_same_checkpoint(tmp_path / "ref" / "checkpoints" / f"step_{STEPS:08d}",
                                    tmp_path / "run" / "checkpoints" / f"step_{STEPS:08d}")
    # the loaders agree: resolve_generator_file/load_generator pick the same newest checkpoint
    from posetransfer.checkpoint import resolve_generator_file

    assert resolve_generator_file(tmp_path / "run").parent.name == f"step_{STEPS:08d}"
    tally("campaign: final weights bit-identical to an uninterrupted run", tried=1, passed=1)


# ---------------------------------------------------------------------------------------------------------------
# The console script, killed from outside
# ---------------------------------------------------------------------------------------------------------------
def _published(root: Path) -> set[str]:
    """The committed checkpoints: ``step_N`` folders (renamed into place only once complete), never the
    ``step_N.tmp`` being written — counting those let a kill land before the first checkpoint existed."""
    try:
        return {n for n in os.listdir(root) if re.match(r"^step_\d+$", n)}
    except FileNotFoundError:
        return set()


def test_console_script_killed_at_random_times(tiny_data, tmp_path, tally):
    """3 external SIGKILLs at seeded random moments after a checkpoint write started, then a clean resume."""
    steps, kills = 40, 3
    rng = random.Random(99)
    run = tmp_path / "run"
    root = run / "checkpoints"
    args = ["train", "--preset", faultlib.PRESET, "--data", tiny_data, "--out", run, "--resume", "--steps", steps,
            "--no-progress", *faultlib.cli_set_args(faultlib.tiny_overrides(steps, keep_last=KEEP))]
    published_before_kill = 0
    for k in range(kills):
        seen = _published(root)
        proc = subprocess.Popen(faultlib.CLI + [str(a) for a in args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=faultlib.clean_env())
        deadline = time.time() + 120
        while _published(root) <= seen and proc.poll() is None:   # training is running: a new checkpoint committed
            assert time.time() < deadline, "training did not start"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))   # lands in a step or in a checkpoint write (progress stays bounded)
        published = [int(n.split("_")[1]) for n in _published(root)]
        published_before_kill = max(published, default=0)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"kill {k}: the run ended before the kill (exit {proc.returncode})"
        info = faultlib.inspect_run(run)
        assert info["invalid"] == [] and info["latest"] is not None
        # a checkpoint that was published before the kill is never lost (at most the steps since it are)
        assert info["latest"] >= published_before_kill, info
        tally("console script SIGKILLed at a random time", tried=1, killed=1,
              tmp_debris_at_resume=int(bool(info["debris"])), max_lost_published_checkpoints=0)
    done = faultlib.run_cli(args)
    assert done.returncode == 0, done.stderr[-2000:]
    info = faultlib.inspect_run(run)
    assert info["latest"] == steps and info["debris"] == []
    assert re.search(r"resumed from .*step_\d{8} \(step \d+\)", (run / "train.log").read_text())
    # the resumed console-script run equals an uninterrupted one (the same CLI, never killed)
    ref = tmp_path / "ref"
    clean = faultlib.run_cli([ref if a == run else a for a in args])
    assert clean.returncode == 0, clean.stderr[-2000:]
    faultlib.assert_same_checkpoint(ref / "checkpoints" / f"step_{steps:08d}",
                                    run / "checkpoints" / f"step_{steps:08d}")
