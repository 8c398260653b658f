"""posetransfer.io: the background writer of new files (atomic writes are tested with checkpoints)."""
from __future__ import annotations

import os

import pytest

from posetransfer import io
from posetransfer.errors import DataError


def test_background_writer_writes_every_file_before_close_returns(tmp_path):
    files = {tmp_path / f"{i:03d}.bin": os.urandom(100 + i) for i in range(200)}
    with io.BackgroundWriter(batch=3, max_pending=2) as writer:   # a small queue: the caller waits for the disk
        for path, data in files.items():
            writer.write(path, data)
    assert all(path.read_bytes() == data for path, data in files.items())
    umask = os.umask(0)
    os.umask(umask)
    assert all((path.stat().st_mode & 0o777) == 0o666 & ~umask for path in files)   # ordinary files


def test_a_failed_write_is_raised_in_the_caller_naming_the_file(tmp_path):
    (tmp_path / "taken.jpg").write_bytes(b"old")
    writer = io.BackgroundWriter()
    writer.write(tmp_path / "taken.jpg", b"new")            # exists: new files only
    writer.write(tmp_path / "after.jpg", b"x")
    with pytest.raises(DataError, match=r"taken\.jpg: cannot write the file \(File exists\)"):
        writer.close()
    assert (tmp_path / "taken.jpg").read_bytes() == b"old"
    assert not (tmp_path / "after.jpg").exists()            # the writer stops at the first failure
    with pytest.raises(DataError, match="closed"):
        writer.write(tmp_path / "late.jpg", b"x")


def test_the_next_write_reports_an_earlier_failure(tmp_path):
    writer = io.BackgroundWriter()
    writer.write(tmp_path / "missing-folder" / "a.jpg", b"x")
    with pytest.raises(DataError, match=r"missing-folder/a\.jpg: cannot write the file \(No such file"):
        for i in range(1000):                               # the failure arrives within a few batches
            writer.write(tmp_path / f"{i}.jpg", b"x")
    writer.close(abort=True)


def test_an_exception_in_the_caller_wins_and_stops_the_writer(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with io.BackgroundWriter() as writer:
            writer.write(tmp_path / "missing" / "a.jpg", b"x")   # would fail too: not reported over Ctrl-C
            raise KeyboardInterrupt
    assert not writer._thread.is_alive()
