"""Real disk faults for the I/O-error tests: a small tmpfs (disk full) and a read-only mount.

Both need ``mount`` (root with CAP_SYS_ADMIN); where it is refused the tests that need them skip with the
reason, and the simulated variants (ENOSPC raised by monkeypatched writers) still run. As plain non-root a
read-only folder is made with ``chmod`` instead (root ignores permission bits, so that only works unprivileged).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``3m``) mounted on ``path`` for the block (skips where mount is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """An empty folder nothing can be written into (a read-only tmpfs, or chmod 555 when not root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with tmpfs(path, "1m"):
        done = _mount("-o", "remount,ro", str(path))
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({done.stderr.strip()})")
        yield path
