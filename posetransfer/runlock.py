"""One trainer per run folder: an exclusive ``fcntl.flock`` on ``<run>/train.lock``.

Why: two ``posetransfer train --out runs/x`` started together both pass the "already holds checkpoints" check
and then write into the same checkpoints — one checkpoint was seen holding G and D of one trainer and the
training state of the other, with a manifest that verified. A lock taken before any check makes the second
trainer stop at once with a one-line error naming the holder's PID. ``flock`` locks belong to the open file,
so the kernel drops the lock when the holder dies in any way (SIGKILL, OOM killer): no stale lock to remove
by hand; the PID in the file is only for the message.

Under ``torchrun`` only rank 0 locks (every rank of one job writes into the same folder by design).
"""
from __future__ import annotations

import errno
import fcntl
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import ConfigError

LOCK_FILE = "train.lock"

F = TypeVar("F", bound=Callable[..., Any])


class RunLock:
    """``with RunLock(run): ...`` holds the run folder; :meth:`acquire` raises :class:`ConfigError` if held."""

    def __init__(self, run: str | os.PathLike) -> None:
        self.run = Path(run)
        self.path = self.run / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []       # folders this lock made (``runs/`` and ``runs/x``), deepest last
        self._created_lock_file = False

    def acquire(self) -> "RunLock":
        for _ in range(100):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                self._created, self._created_lock_file = [], False
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigError(f"{self.path}: cannot lock the run folder ({exc.strerror or exc})") from None
                who = f"PID {holder}" if holder else "another process"
                raise ConfigError(f"{self.run}: another trainer ({who}) is using this run folder; wait for it to "
                                  f"finish or choose another --out") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)    # locked a lock file that a refused trainer removed meanwhile: lock the new one
        else:  # pragma: no cover - only under a storm of trainers created and removed at the same moment
            raise ConfigError(f"{self.path}: cannot lock the run folder (the lock file keeps being replaced)")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def _open(self) -> int:
        missing = [folder for folder in (self.run, *self.run.parents) if not folder.exists()]
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            self._created = self._created or missing[::-1]
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                self._created_lock_file = True
            except FileExistsError:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            return fd
        except OSError as exc:
            from .io import describe_os_error

            name, reason = describe_os_error(exc)
            raise ConfigError(f"{name or self.run}: cannot use as a run folder ({reason})") from None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)      # no PID of a finished trainer left in the file
        except OSError:
            pass
        if self._created_lock_file and _only_lock_file(self.run):
            # nothing was written: leave no lock file and no empty folder behind (a config error, a wrong --data)
            try:
                self.path.unlink()
                for folder in reversed(self._created):
                    folder.rmdir()
            except OSError:
                pass
        os.close(fd)                 # closing the descriptor drops the lock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _only_lock_file(run: Path) -> bool:
    try:
        return [p.name for p in run.iterdir()] == [LOCK_FILE]
    except OSError:
        return False


def _is_main_rank() -> bool:
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def holds_run_folder(func: F) -> F:
    """Decorator: hold the lock of the run folder given as ``out`` for the whole call (rank 0 only)."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        out = signature.bind(*args, **kwargs).arguments.get("out")
        if out is None or not _is_main_rank():
            return func(*args, **kwargs)
        with RunLock(out):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
