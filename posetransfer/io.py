"""File helpers shared by every module: atomic writes and image reading with clear errors.

Why one place: checkpoints, results JSON, CSVs and generated images must never be left half-written
(a crash or SIGKILL during a write leaves either the old file or the new one, never a truncated one),
and a bad image must raise :class:`DataError` naming the file instead of a PIL traceback.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

#: Refuse images larger than this many pixels (decompression bombs); PIL's own guard is a warning only.
MAX_IMAGE_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; on success fsync and rename it over ``path``.

    The temporary name ends in ``.tmp`` so that readers listing checkpoints can ignore debris left by a
    killed process. The file gets the mode ``open()`` would give a new file (0666 less the umask), also when
    the writer replaced the temporary (safetensors' ``save_file`` creates its file anew, 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 (and so does a writer that replaces the file)
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import: os.umask() can only be read by setting it, which is not thread-safe later on.
_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of a UTF-8 file; an unreadable or malformed file is a one-line :class:`DataError`
    naming it (callers check that it exists and that the document has their shape)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc.__class__.__name__}: {exc})") from None


def write_new_file(path: str | os.PathLike, data: bytes) -> None:
    """Write a file that must not exist yet (the files of a dataset being built in a new temporary folder).

    Not atomic on its own: callers build in a temporary folder renamed into place at the end. A raw
    ``os.open``/``os.write`` costs two thirds of a buffered ``open()`` (no buffer, no fstat), which counts
    when the file is a 3 KB JPEG rendered in 1.5 ms.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # the umask applies, as for open()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class BackgroundWriter:
    """Write new files (:func:`write_new_file`) on one background thread, in order.

    Why: on a virtual disk, creating a small file costs 0.3–0.6 ms of kernel time — a third of the time
    the synthetic-people generator needs to render the image. The system calls release the GIL, so on a
    thread they overlap the next render instead of adding to it. Files are handed over ``batch`` at a
    time: every hand-over wakes the thread and moves the GIL between threads, which for single 3 KB files
    cost more than writing them does in RAM (measured: one file per hand-over was 20 % slower than writing
    inline into ``/dev/shm``; ten per hand-over is on a par there and 45 % faster than inline on the
    virtual disk). ``max_pending`` batches bound the memory held by queued files. The first failure (disk
    full, missing folder) stops the writer and is raised in the caller, by a later :meth:`write` or by
    :meth:`close`, as a one-line :class:`DataError` naming the file.

        with BackgroundWriter() as writer:
            for name, data in files:
                writer.write(folder / name, data)
        # every file is on disk here (or the error was raised)
    """

    def __init__(self, batch: int = 10, max_pending: int = 8) -> None:
        self._batch_size = max(1, int(batch))
        self._batch: list[tuple[str, bytes]] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_pending)))
        self._error: DataError | None = None
        self._abort = False
        self._thread = threading.Thread(target=self._run, name="posetransfer-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            for path, data in batch:
                if self._error is not None or self._abort:
                    break                      # drop the rest: the caller is told or gave up
                try:
                    write_new_file(path, data)
                except OSError as exc:
                    self._error = DataError(f"{path}: cannot write the file ({exc.strerror or exc})")

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _hand_over(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._queue.put(batch)

    def write(self, path: str | os.PathLike, data: bytes) -> None:
        """Queue ``data`` for ``path`` (blocks while ``max_pending`` batches are waiting)."""
        if not self._thread.is_alive():
            raise DataError(f"{path}: the background writer is closed")
        self._raise_error()
        self._batch.append((os.fspath(path), data))
        if len(self._batch) >= self._batch_size:
            self._hand_over()

    def close(self, abort: bool = False) -> None:
        """Wait until every queued file is written (or, with ``abort``, dropped); raise the first failure."""
        if self._thread.is_alive():
            self._abort = abort               # close runs once: the thread is gone afterwards
            if not abort:
                self._hand_over()
            self._batch = []
            self._queue.put(None)
            self._thread.join()
        if not abort:
            self._raise_error()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(abort=exc_type is not None)   # an exception in the caller wins over a write failure


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoint manifests, converted files' provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an RGB image as a uint8 H×W×3 array.

    ``size`` = (H, W): when given, the image must have exactly that size (datasets) — a mismatch is a
    :class:`DataError` naming the file, not a silent resize.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    array = np.asarray(rgb, dtype=np.uint8)
    if size is not None and array.shape[:2] != tuple(size):
        raise DataError(
            f"{path}: image is {array.shape[0]}x{array.shape[1]} (HxW) but {size[0]}x{size[1]} is expected"
        )
    return array


def save_image(path: str | os.PathLike, array: np.ndarray, quality: int = 95) -> None:
    """Save a uint8 H×W×3 (or H×W) array atomically; the format follows the file suffix."""
    path = Path(path)
    img = Image.fromarray(np.ascontiguousarray(array))
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}.get(
        path.suffix.lower(), "PNG"
    )
    with atomic_path(path) as tmp:
        kwargs = {"quality": quality} if fmt == "JPEG" else {}
        img.save(tmp, format=fmt, **kwargs)


def image_to_tensor_range(array: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 → float32 3×H×W in [-1, 1] (the PATN normalisation: ToTensor + Normalize(.5, .5))."""
    return (array.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0


def tensor_range_to_image(array: np.ndarray) -> np.ndarray:
    """float 3×H×W in [-1, 1] → uint8 H×W×3, rounding to nearest (the official code floors; see metrics)."""
    img = (np.clip(array, -1.0, 1.0).transpose(1, 2, 0) + 1.0) * 127.5
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
