"""Fault-injection driver: runs ``posetransfer train`` (the real CLI entry, ``posetransfer.cli.main``) in forked
children and SIGKILLs them at chosen points, then records what each kill left behind.

Usage: ``python faultrun.py PLAN.json RESULT.json`` (started by tests/robustness/test_kill_training.py).

Why a driver that forks instead of one ``posetransfer train`` process per trial: importing torch (and the
torch._dynamo modules Adam pulls in) costs several seconds per process on a small CI machine; the driver
imports once and forks before any tensor computation (so no OpenMP thread pool is copied into a child).
Each child then runs exactly what the console script runs: ``posetransfer.cli.main(["train", ...])``.

Kill points (all in the child, by wrapping a library function; nothing in the trainer is changed):

* ``call``     SIGKILL on the n-th call of a function, e.g. ``posetransfer.train.learning_rate`` (start of a
               step), ``posetransfer.training.step._check_finite`` (after the forward pass, before backward),
               ``posetransfer.training.step._clip`` (after backward, before the optimizer step),
               ``posetransfer.checkpoint.sha256_file`` (checkpoint files written, manifest not yet);
* ``partial``  the n-th safetensors file write (``posetransfer.modelfile``) stops after ``fraction`` of its
               bytes (torn write);
* ``replace``  before the n-th ``os.replace`` (an atomically written file complete but not renamed);
* ``publish``  before the n-th rename ``step_X.tmp`` → ``step_X`` (complete checkpoint folder, unpublished);
* ``prune``    in the middle of deleting an old checkpoint (after its rename to ``*.deleting.tmp``);
* ``timer``    from the driver, ``delay`` seconds after the child started its first training step.

Other faults (no kill): ``nan`` multiplies the n-th result of a function by NaN (or ``value``, e.g. inf),
``nan_grad`` fills one gradient with NaN before the n-th ``_clip`` call (finite loss, non-finite gradient),
``unlink`` / ``garble`` delete or overwrite dataset files at the start of step ``at_step`` (mid-epoch).
A trial may also ``corrupt`` the newest checkpoint (bit flip or truncation of one file) before it starts.

Progress is observed, not changed: ``learning_rate(step)`` marks the start of a step and
``Progress.update`` its end, written unbuffered to a side file.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faultlib  # noqa: E402
import posetransfer.checkpoint  # noqa: E402,F401
import posetransfer.cli  # noqa: E402
import posetransfer.data.dataset  # noqa: E402,F401
import posetransfer.logging_utils  # noqa: E402
import posetransfer.models.registry as registry  # noqa: E402
import posetransfer.train  # noqa: E402
import posetransfer.training.step  # noqa: E402

# Warm the lazy imports a training run triggers (model files, tensorboard, torch._dynamo via Adam) in the
# driver, so every forked child starts at once. Only tiny tensors are created: no parallel kernels run.
registry.generator_names()
torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
import torch.utils.tensorboard  # noqa: E402,F401


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _resolve(dotted: str):
    module_name, _, attr = dotted.rpartition(".")
    module = sys.modules[module_name] if module_name in sys.modules else __import__(module_name, fromlist=[attr])
    return module, attr


def install_fault(fault: dict) -> None:
    """Arm one kill point in this (child) process."""
    kind, nth = fault["kind"], int(fault.get("nth", 1))
    counter = {"n": 0}

    def hit() -> bool:
        counter["n"] += 1
        return counter["n"] == nth

    if kind == "call":
        module, attr = _resolve(fault["target"])
        real = getattr(module, attr)

        def wrapped(*args, **kwargs):
            if hit():
                _die()
            return real(*args, **kwargs)

        setattr(module, attr, wrapped)
    elif kind == "partial":
        import posetransfer.modelfile as st   # the one writer of posetransfer's safetensors files

        real_save = st.save_file

        def save_file(tensors, filename, metadata=None):
            real_save(tensors, filename, metadata=metadata)
            if hit():
                size = os.path.getsize(filename)
                with open(filename, "r+b") as handle:
                    handle.truncate(int(size * float(fault.get("fraction", 0.5))))
                    handle.flush()
                    os.fsync(handle.fileno())
                _die()

        st.save_file = save_file
    elif kind == "replace":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if hit():
                _die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif kind == "publish":
        real_rename = os.rename

        def rename(src, dst, *args, **kwargs):
            if str(src).endswith(".tmp") and Path(dst).name.startswith("step_") and not str(dst).endswith(".tmp"):
                if hit():
                    _die()
            return real_rename(src, dst, *args, **kwargs)

        os.rename = rename
    elif kind == "prune":
        import shutil

        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            if str(path).endswith(".deleting.tmp") and hit():
                files = sorted(Path(path).iterdir())
                for f in files[: len(files) // 2]:  # half deleted, then killed
                    f.unlink()
                _die()
            return real_rmtree(path, *args, **kwargs)

        shutil.rmtree = rmtree
    elif kind == "nan":
        module, attr = _resolve(fault["target"])
        real = getattr(module, attr)

        def wrapped(*args, **kwargs):
            value = real(*args, **kwargs)
            return value * float(fault.get("value", "nan")) if hit() else value

        setattr(module, attr, wrapped)
    elif kind == "nan_grad":
        step_mod = posetransfer.training.step
        real_clip = step_mod._clip

        def clip(scaler, optimizer, params, max_norm):
            if hit():
                grads = [p for p in params if p.grad is not None]
                grads[0].grad.fill_(float("nan"))
            return real_clip(scaler, optimizer, params, max_norm)

        step_mod._clip = clip
    elif kind in ("unlink", "garble"):
        train_mod = posetransfer.train
        real_lr = train_mod.learning_rate

        def learning_rate(step, optim):
            if step == int(fault["at_step"]):
                for name in fault["files"]:
                    if kind == "unlink":
                        Path(name).unlink()
                    else:
                        Path(name).write_bytes(b"\xff\xd8\xff\xe0 garbage, not a JPEG any more")
            return real_lr(step, optim)

        train_mod.learning_rate = learning_rate
    elif kind in ("timer", "none"):
        pass
    else:
        raise ValueError(f"unknown fault kind {kind!r}")


def observe_progress(path: Path) -> None:
    """Append ``start <step>`` / ``end`` lines to ``path`` (O_APPEND, unbuffered: survives SIGKILL)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    train_mod = posetransfer.train
    real_lr = train_mod.learning_rate

    def learning_rate(step, optim):
        os.write(fd, f"start {step}\n".encode())
        return real_lr(step, optim)

    train_mod.learning_rate = learning_rate
    progress_cls = posetransfer.logging_utils.Progress
    real_update = progress_cls.update

    def update(self, losses=None):
        os.write(fd, b"end\n")
        return real_update(self, losses)

    progress_cls.update = update


def read_progress(path: Path) -> dict:
    """First step this child started from, and how many steps it had completed when it stopped."""
    if not path.is_file():
        return {"first": None, "completed": None}
    lines = path.read_text().split()
    first, completed, last_start = None, None, None
    tokens = iter(lines)
    for token in tokens:
        if token == "start":
            last_start = int(next(tokens))
            if first is None:
                first = last_start
            completed = last_start
        elif token == "end" and last_start is not None:
            completed = last_start + 1
    return {"first": first, "completed": completed}


def run_child(argv: list[str], faults: list[dict], log_path: Path, progress_path: Path) -> int:
    """Fork; the child runs the CLI with the faults armed. Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            for fault in faults:
                install_fault(fault)
            observe_progress(progress_path)   # outermost: a step is recorded as started before a fault fires
            code = posetransfer.cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - report, never return into the driver's loop
            import traceback

            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    timer = next((f for f in faults if f["kind"] == "timer"), None)
    if timer is not None:
        deadline = time.time() + 300
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if read_progress(progress_path)["first"] is not None:
                break
            time.sleep(0.01)
        time.sleep(float(timer["delay"]))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    return status


CHECKPOINT_FILES = ("generator.safetensors", "discriminators.safetensors", "training_state.safetensors",
                    "state.json", "manifest.json")


def corrupt_newest(run: Path, spec: dict) -> dict:
    """Bit-flip or truncate one file of the newest checkpoint (only if an older valid one exists)."""
    import random

    info = faultlib.inspect_run(run)
    valid = [s for s in info["listed"] if not any(bad.startswith(f"step_{s:08d}") for bad in info["invalid"])]
    if len(valid) < 2 or valid[-1] != info["listed"][-1]:
        return {"skipped": True}
    rng = random.Random(spec["seed"])
    step = valid[-1]
    path = run / "checkpoints" / f"step_{step:08d}" / spec["file"]
    data = bytearray(path.read_bytes())
    if spec["mode"] == "bitflip":
        offset = rng.randrange(len(data))
        data[offset] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        detail = f"bit flip at byte {offset} of {len(data)}"
    else:
        keep = rng.randrange(len(data))
        path.write_bytes(bytes(data[:keep]))
        detail = f"truncated to {keep} of {len(data)} bytes"
    return {"skipped": False, "step": step, "previous": valid[-2], "file": spec["file"], "detail": detail}


def child_result(status: int, log_path: Path, progress_path: Path) -> dict:
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {"killed": killed, "exit": None if killed else os.waitstatus_to_exitcode(status),
            **read_progress(progress_path), "log": log_path.read_text(errors="replace")[-4000:]}


def campaign(plan: dict) -> dict:
    """Reference run, then one run folder killed trial after trial (each trial resumes it), then finished."""
    work = Path(plan["work"])
    data, steps = plan["data"], int(plan["steps"])
    sets = faultlib.tiny_overrides(steps, plan.get("checkpoint_every", faultlib.CHECKPOINT_EVERY),
                                   plan.get("keep_last", 3))

    def argv(out: Path) -> list[str]:
        return ["train", "--preset", faultlib.PRESET, "--data", data, "--out", str(out), "--resume",
                "--steps", str(steps), "--no-progress", *faultlib.cli_set_args(sets)]

    results: dict = {"trials": []}
    if plan.get("reference"):
        ref = Path(plan["reference"])
        status = run_child(argv(ref), [], work / "reference.log", work / "reference.progress")
        results["reference"] = {**child_result(status, work / "reference.log", work / "reference.progress"),
                                **faultlib.inspect_run(ref)}
    run = Path(plan["run"])
    for i, trial in enumerate(plan["trials"]):
        log_path, progress_path = work / f"trial{i:02d}.log", work / f"trial{i:02d}.progress"
        corrupted = corrupt_newest(run, trial["corrupt"]) if trial.get("corrupt") else None
        before = faultlib.inspect_run(run)
        started = time.time()
        status = run_child(argv(run), trial["faults"], log_path, progress_path)
        results["trials"].append({
            "faults": trial["faults"], "corrupted": corrupted, "seconds": round(time.time() - started, 2),
            "before": before, "after": faultlib.inspect_run(run), **child_result(status, log_path, progress_path),
        })
    status = run_child(argv(run), [], work / "final.log", work / "final.progress")
    results["final"] = {**child_result(status, work / "final.log", work / "final.progress"),
                        **faultlib.inspect_run(run)}
    return results


def jobs(plan: dict) -> dict:
    """Independent CLI invocations, each with its own faults (no kill unless a fault kills)."""
    work = Path(plan["work"])
    out = {}
    for job in plan["jobs"]:
        name = job["name"]
        log_path, progress_path = work / f"{name}.log", work / f"{name}.progress"
        status = run_child([str(a) for a in job["argv"]], job.get("faults", []), log_path, progress_path)
        out[name] = child_result(status, log_path, progress_path)
        if job.get("inspect"):   # the run folder as this job left it (later jobs may continue it)
            out[name]["after"] = faultlib.inspect_run_deep(Path(job["inspect"]))
    return out


def main(plan_path: str, result_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    result = campaign(plan) if plan["mode"] == "campaign" else jobs(plan)
    Path(result_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
