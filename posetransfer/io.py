"""File helpers shared by every module: atomic writes and image reading with clear errors.

Why one place: checkpoints, results JSON, CSVs and generated images must never be left half-written
(a crash or SIGKILL during a write leaves either the old file or the new one, never a truncated one),
and a bad image must raise :class:`DataError` naming the file instead of a PIL traceback.
"""
from __future__ import annotations

import contextlib
import errno
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

from .errors import DataError, OutputError

#: Refuse images larger than this many pixels (decompression bombs); PIL's own guard is a warning only.
MAX_IMAGE_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

TMP_SUFFIX = ".tmp"


def describe_os_error(exc: BaseException) -> tuple[str | None, str]:
    """(the path to blame, the reason in a few words) of a failed file operation.

    The OS's words (``No space left on device``, ``Read-only file system``, ...) except where they mislead:
    ``File exists`` from making a folder means a *file* (or a symlink loop) is in the way, ``Not a directory``
    means a part of the path is a file. Temporary names (``*.tmp``) are not blamed: callers name the target.
    """
    if not isinstance(exc, OSError):
        lines = str(exc).strip().splitlines()
        return None, lines[0] if lines else exc.__class__.__name__
    name = os.fsdecode(exc.filename) if exc.filename is not None else None
    reason = exc.strerror or str(exc).strip().replace("\n", " ") or exc.__class__.__name__
    if name is not None and isinstance(exc, FileExistsError):
        if os.path.islink(name) and not os.path.exists(name):
            reason = "is a symbolic link loop or a dangling link, not a folder"
        elif os.path.exists(name) and not os.path.isdir(name):
            reason = "exists and is not a folder"
    elif name is not None and isinstance(exc, NotADirectoryError):
        blocker = next((p for p in Path(name).parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            name, reason = str(blocker), "is a file, not a folder"
    if name is not None and name.endswith(TMP_SUFFIX):
        name = None
    return name, reason


def os_error_reason(exc: BaseException) -> str:
    """:func:`describe_os_error` as one phrase: ``reason`` or ``reason: path``."""
    name, reason = describe_os_error(exc)
    return f"{reason}: {name}" if name else reason


def _is_write_failure(exc: BaseException) -> bool:
    """OSError, and the writers' own wrappers of one (safetensors' Rust writer raises SafetensorError)."""
    return isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; on success fsync and rename it over ``path``.

    The temporary name ends in ``.tmp`` so that readers listing checkpoints can ignore debris left by a
    killed process. A failed write (disk full, read-only folder, ``path`` an existing folder, a symlink loop)
    leaves no temporary behind and is an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder, a file is expected here")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should be ordinary files
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except Exception as exc:
        if not _is_write_failure(exc):
            raise
        name, reason = describe_os_error(exc)
        where = f"{name}: {reason}" if name and Path(name) != path else reason
        raise OutputError(f"{path}: cannot write ({where})") from None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
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
    ``os.open``/``os.write`` skips the buffer and the fstat of a buffered ``open()``, which counts when the
    file is a 3 KB JPEG rendered in about a millisecond.
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

    Why: on a virtual disk, creating a small file costs kernel time comparable to rendering the image in
    the synthetic-people generator. The system calls release the GIL, so on a thread they overlap the next
    render instead of adding to it. Files are handed over ``batch`` at a time: every hand-over wakes the
    thread and moves the GIL between threads, which for single 3 KB files costs more than writing them
    does in RAM; a few files per hand-over keeps the RAM case on a par with inline writing and the
    virtual-disk case well ahead (figures: ``benchmarks/results/io_background_writer_notes.md``).
    ``max_pending`` batches bound the memory held by queued files. The first failure (disk
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


class NewFiles:
    """The files a command creates under ``root``, removed again if the command fails.

    Why: a batch command stopped half-way (disk full) must not leave a partial set of results that looks
    like a finished one — and on a full disk the partial files are what keeps it full. Files that existed
    before are never removed (an overwritten one keeps its new, complete content), and neither is anything
    not written through this object; folders it created are removed when they end up empty.

        with NewFiles(out) as files:
            files.save_image(out / "a.png", image)
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.created: list[Path] = []
        self._folders: list[Path] = []

    def _track(self, path: Path) -> bool:
        for folder in reversed([path.parent, *path.parent.parents]):
            if not folder.exists() and folder not in self._folders:
                self._folders.append(folder)
        return not path.exists()

    def save_image(self, path: str | os.PathLike, array: np.ndarray, **kwargs) -> None:
        path = Path(path)
        fresh = self._track(path)
        save_image(path, array, **kwargs)
        if fresh:
            self.created.append(path)

    def write_json(self, path: str | os.PathLike, obj: Any) -> None:
        path = Path(path)
        fresh = self._track(path)
        write_json(path, obj)
        if fresh:
            self.created.append(path)

    def remove(self) -> None:
        for path in self.created:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(self._folders):
            with contextlib.suppress(OSError):
                folder.rmdir()             # only when empty
        self.created, self._folders = [], []

    def __enter__(self) -> "NewFiles":
        if not self.root.exists():
            self._track(self.root / "_")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            name, reason = describe_os_error(exc)
            raise OutputError(f"{name or self.root}: cannot create the output folder ({reason})") from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.remove()


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
            array = pil_to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    if size is not None and array.shape[:2] != tuple(size):
        raise DataError(
            f"{path}: image is {array.shape[0]}x{array.shape[1]} (HxW) but {size[0]}x{size[1]} is expected"
        )
    return array


#: PIL modes of 16- and 32-bit greyscale images (16-bit PNG, TIFF), which ``convert("RGB")`` clips at 255
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """uint8 H×W×3 of a loaded PIL image. 16-bit greyscale is *scaled* to 8 bits (÷257): PIL's
    ``convert("RGB")`` clips it, turning almost every pixel white. A 32-bit ``I`` image is scaled the same
    way when it holds values above 255 (PIL opens some 16-bit files as ``I``)."""
    if img.mode in _WIDE_GREY_MODES:
        values = np.asarray(img).astype(np.float64)
        if img.mode != "I" or (values.size and values.max() > 255):
            values = values / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


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
