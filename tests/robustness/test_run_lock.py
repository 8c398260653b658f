"""Issue 20, item 2: one trainer per run folder.

Two ``posetransfer train --out runs/x`` started together both passed the "already holds checkpoints" check and
wrote into the same checkpoints (once a checkpoint held G and D of one trainer and the training state of the
other, and verified). The run folder is now locked (``fcntl.flock`` on ``<run>/train.lock``): a second trainer is
refused with exit 2 naming the holder's PID, and the kernel releases the lock when the holder is SIGKILLed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import faultlib
from posetransfer.errors import ConfigError
from posetransfer.runlock import LOCK_FILE, RunLock


def _train_args(data, run, steps, *extra):
    return ["train", "--preset", faultlib.PRESET, "--data", data, "--out", run, "--steps", steps, "--no-progress",
            *extra, *faultlib.cli_set_args(faultlib.tiny_overrides(100000))]


def test_second_trainer_is_refused_and_the_lock_dies_with_the_holder(tiny_data, tmp_path, tally):
    run = tmp_path / "run"
    holder = subprocess.Popen(faultlib.CLI + [str(a) for a in _train_args(tiny_data, run, 100000)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=faultlib.clean_env())
    try:
        deadline = time.time() + 120
        while faultlib.inspect_run(run)["latest"] is None:     # the holder is training: a checkpoint is committed
            assert holder.poll() is None, holder.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the first trainer did not write a checkpoint"
            time.sleep(0.05)
        for extra in (("--resume",),):    # (a fresh start was refused before: "already holds checkpoints")
            second = faultlib.run_cli(_train_args(tiny_data, run, 4, *extra))
            err = second.stderr.strip()
            tally("two trainers on one run folder", tried=1, refused=int(second.returncode == 2))
            assert second.returncode == 2, err[-2000:]
            assert err.startswith("error: ") and "\n" not in err, err
            assert f"PID {holder.pid}" in err and str(run) in err, err
        assert holder.poll() is None, "the refused trainer disturbed the running one"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)
    info = faultlib.inspect_run(run)
    assert info["invalid"] == [] and info["latest"] is not None
    # SIGKILL: the kernel dropped the lock, the run resumes at once
    resumed = faultlib.run_cli(_train_args(tiny_data, run, info["latest"] + 1, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert faultlib.inspect_run(run)["latest"] == info["latest"] + 1
    tally("run folder lock released by the kernel on SIGKILL", tried=1, resumed=1)


def test_lock_in_one_process_names_the_holder_and_is_released(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")   # a run that wrote something keeps its (emptied) lock file
    with RunLock(run):
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(ConfigError, match=rf"PID {os.getpid()}\b"):
            RunLock(run).acquire()
    with RunLock(run):          # released on exit: taken again
        pass
    assert (run / LOCK_FILE).read_text() == ""
    (run / "config.yaml").unlink()
    with RunLock(run):          # nothing but the lock in a folder that existed: the folder stays, the lock goes
        assert (run / LOCK_FILE).exists()
    assert run.is_dir() and list(run.iterdir()) == [run / LOCK_FILE]   # the lock file was not ours this time
    (run / LOCK_FILE).unlink()
    with RunLock(run):
        pass
    assert run.is_dir() and list(run.iterdir()) == []


def test_refused_run_creates_nothing(tmp_path):
    """A trainer refused for another reason leaves no empty run folder behind just for its lock file."""
    from posetransfer.cli import main

    run = tmp_path / "never"
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert not run.exists()
    nested = tmp_path / "runs" / "a" / "x"     # every folder the lock made goes again, the parents too
    assert main(["train", "--out", str(nested), "--resume"]) == 2
    assert not (tmp_path / "runs").exists()
