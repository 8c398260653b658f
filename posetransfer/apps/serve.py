"""``posetransfer serve``: a small local web demo (FastAPI + one static page, no external resources).

Upload a person photo (or use a dataset sample), pick a target pose from the dataset gallery or drag the
joints of a skeleton, and get the generated image and the per-block attention masks.

Safety limits, because the server decodes untrusted uploads: the request body is capped
(:data:`MAX_UPLOAD_BYTES`, 413; counted while it streams in, so a chunked body without Content-Length is
cut at the limit too), only JPEG, PNG, WebP and BMP are decoded (:data:`UPLOAD_FORMATS`), image dimensions
are checked from the header *before* decoding (:data:`MAX_PIXELS`; decompression bombs), anything PIL
cannot read is a 400 with a message, and model inference (and pose estimation, whose estimators are not
thread-safe) runs under a lock. :func:`serve` also answers only to its own ``Host`` names and drops
connections whose headers never finish (:mod:`posetransfer.apps.serve_guards`).
Every error is JSON ``{"error": "<one line>"}``; the page shows it.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException

from .. import skeleton as S
from .. import viz
from ..data import keypoints as K
from ..errors import DataError, PoseError, PosetransferError
from ..inference import InferenceModel
from ..io import pil_to_rgb
from ..kinds import MARKET
from .poses import Pose, estimate_pose, target_to_model
from .serve_guards import HEADER_TIMEOUT, HostAllowList, allowed_host_names, protocol_with_timeout

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
#: Room for the form's other fields (keypoints JSON, multipart headers) in a request body.
FORM_OVERHEAD_BYTES = 64 * 1024
#: The only formats an upload is decoded as (PIL would otherwise try every plugin, EPS through Ghostscript).
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
#: Largest photo accepted, in pixels (a 24-megapixel camera image fits; a 20000×20000 bomb does not).
MAX_PIXELS = 25_000_000
GALLERY_LIMIT = 48
#: A standing person in a 128×64 frame (y, x): the default of the pose editor, rescaled to the model frame.
DEFAULT_POSE_128x64 = np.array([
    [20, 32], [30, 32], [30, 24], [45, 22], [58, 22], [30, 40], [45, 42], [58, 42], [64, 27],
    [86, 27], [110, 27], [64, 37], [86, 37], [110, 37], [17, 30], [17, 34], [19, 27], [19, 37],
])


class RequestError(Exception):
    """A client error: HTTP ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, name: str = "upload") -> np.ndarray:
    """Bytes of an uploaded photo → uint8 RGB, refusing oversized, huge or unreadable files with a message."""
    if len(data) > MAX_UPLOAD_BYTES:   # callers read at most the limit + 1 byte: the true size is unknown
        raise RequestError(413, f"{name}: file is over the upload limit (the limit is {MAX_UPLOAD_BYTES // 2**20} MB)")
    if not data:
        raise RequestError(400, f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise RequestError(413, f"{name}: image is {w}x{h} pixels, the limit is {MAX_PIXELS // 10**6} "
                                        f"megapixels")
            img.load()
            rgb = pil_to_rgb(img)
    except RequestError:
        raise
    except Image.DecompressionBombError:
        raise RequestError(413, f"{name}: image dimensions are too large (decompression bomb)") from None
    except UnidentifiedImageError:
        raise RequestError(400, f"{name}: not an image (JPEG, PNG, WebP or BMP expected)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise RequestError(400, f"{name}: broken image file ({exc.__class__.__name__})") from None
    return rgb


def parse_keypoints_field(text: str | None, what: str) -> np.ndarray | None:
    """A form field holding ``[[y, x] × 18]`` JSON (null entries or -1 = missing)."""
    if text is None or text.strip() in ("", "null"):
        return None
    try:
        values = json.loads(text)
        if isinstance(values, dict):
            values = values.get("keypoints")
        rows = [[-1, -1] if v is None else v for v in values]
        return K.validate_keypoints(np.asarray(rows, dtype=np.float64), where=what)
    except PosetransferError as exc:
        raise RequestError(400, str(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise RequestError(400, f"{what}: expected 18 [y, x] pairs as JSON ({exc.__class__.__name__})") from None


def data_url(image: np.ndarray, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class Gallery:
    """Target poses (model frame) and sample people of a dataset's test (else train) split."""

    def __init__(self, model: InferenceModel, data: Path | None, limit: int = GALLERY_LIMIT) -> None:
        self.items: list[dict] = []
        self.images_dir: Path | None = None
        self.poses: dict[str, np.ndarray] = {}
        if data is None:
            return
        from ..data.layout import find_split_files, is_pairable

        last_error: Exception | None = None
        found = []
        for split in ("test", "train"):
            try:
                images_dir, annotation_csv, _ = find_split_files(data, split)
                annotations = K.read_annotations(annotation_csv)
            except PosetransferError as exc:
                last_error = exc
                continue
            found.append((images_dir, annotation_csv, annotations))
            if any(is_pairable(name, kp) and (images_dir / name).is_file() for name, kp in annotations.items()):
                break       # an empty (or image-less) test split falls back to train
        if not found:
            raise DataError(f"{data}: no usable split for the pose gallery ({last_error})")
        images_dir, annotation_csv, annotations = found[-1]
        meta_size = None
        try:
            from ..data.layout import read_dataset_json

            meta = read_dataset_json(data)
            meta_size = tuple(meta["size"]) if "size" in meta else None
        except (PosetransferError, KeyError, TypeError):
            meta_size = None
        frame = meta_size or model.frame
        self.images_dir = images_dir
        for name, kp in annotations.items():
            if len(self.items) >= limit:
                break
            if not is_pairable(name, kp) or not (images_dir / name).is_file():
                continue
            model_kp = target_to_model(Pose(kp, frame, f"{annotation_csv} ({name})"), model.frame)
            self.poses[name] = kp
            self.items.append({"name": name, "keypoints": model_kp.tolist()})
        self.frame = frame

    def sample(self, name: str | None) -> tuple[np.ndarray, Pose]:
        if not self.items or self.images_dir is None:
            raise RequestError(404, "no dataset samples: start the server with --data DIR")
        name = name or self.items[0]["name"]
        if name not in self.poses:
            raise RequestError(404, f"unknown sample {name!r}")
        from ..io import read_image

        image = read_image(self.images_dir / name)
        return image, Pose(self.poses[name], image.shape[:2], name)


def _install_guards(app: FastAPI) -> None:
    """The upload size limit and the error handlers: every failure answers ``{"error": one line}``."""
    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
            except ValueError:
                return JSONResponse({"error": "malformed Content-Length"}, status_code=400)
            if too_big:
                return JSONResponse({"error": f"upload is {int(length) / 2**20:.1f} MB, the limit is "
                                              f"{MAX_UPLOAD_BYTES // 2**20} MB"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestError)
    async def request_error(_request, exc: RequestError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        if exc.status_code == 413:   # FastAPI's streaming body limit: the true size is not known
            message = f"upload is over the size limit (the limit is {MAX_UPLOAD_BYTES // 2**20} MB)"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request, exc: RequestValidationError):   # FastAPI would answer {"detail": [...]}
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_request, exc: Exception):
        log.exception("request failed")
        return JSONResponse({"error": f"internal error ({exc.__class__.__name__})"}, status_code=500)


def _transfer(model: InferenceModel, gallery: "Gallery", pose_lock: threading.Lock, image: UploadFile | None,
              sample: str | None, target_keypoints: str, source_keypoints: str | None) -> dict:
    """``POST /api/transfer``: the uploaded photo (or a gallery sample) in the target pose, as data URLs."""
    started = time.perf_counter()
    target = parse_keypoints_field(target_keypoints, "target_keypoints")
    if target is None or int((~K.missing_mask(target)).sum()) == 0:
        raise RequestError(400, "target_keypoints: no joint given")
    target = K.validate_keypoints(target, model.frame, where="target_keypoints") \
        if _inside(target, model.frame) else _clip_missing(target, model.frame)
    if image is not None and image.filename:
        data = image.file.read(MAX_UPLOAD_BYTES + 1)
        photo = decode_upload(data, image.filename or "upload")
        given = parse_keypoints_field(source_keypoints, "source_keypoints")
        where = image.filename or "upload"
        if given is not None:
            pose = Pose(given, photo.shape[:2], where)
        else:
            try:
                with pose_lock:
                    pose = estimate_pose(photo, where)
            except PoseError as exc:
                raise RequestError(422, str(exc)) from None
    elif sample:
        photo, pose = gallery.sample(sample)
    else:
        raise RequestError(400, "no photo: upload an image or choose a sample")
    try:
        result = model.transfer(photo, target, pose)
    except PoseError as exc:
        raise RequestError(422, str(exc)) from None
    except PosetransferError as exc:
        raise RequestError(400, str(exc)) from None
    generated, prepared = result.model_image, result.source
    attention = None
    if result.output.attention:
        attention = data_url(viz.attention_figure(prepared.image, viz.pose_image(target, model.frame),
                                                  result.output.attention, generated))
    return {"image": data_url(generated), "source": data_url(prepared.image), "attention": attention,
            "source_keypoints": prepared.keypoints.tolist(), "crop_box": prepared.box.to_json(),
            "arch": model.arch, "size": list(model.frame),
            "milliseconds": round(1000 * (time.perf_counter() - started), 1)}


def create_app(model: InferenceModel, data: str | Path | None = None, gallery_limit: int = GALLERY_LIMIT,
               allowed_hosts: set[str] | None = None) -> FastAPI:
    """The FastAPI application (also used by the tests through ``TestClient``).

    ``allowed_hosts``: the ``Host`` names answered (:func:`allowed_host_names`; :func:`serve` passes them);
    None answers any name.
    """
    app = FastAPI(title="posetransfer demo", docs_url=None, redoc_url=None, openapi_url=None,
                  max_body_size=MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES)   # counted while the body streams in
    if allowed_hosts is not None:
        app.add_middleware(HostAllowList, names=allowed_hosts)
    gallery = Gallery(model, Path(data) if data else None, gallery_limit)
    pose_lock = threading.Lock()
    app.state.model = model
    app.state.gallery = gallery
    app.state.requests = 0

    _install_guards(app)

    @app.get("/")
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/info")
    def info():
        default = K.rescale_keypoints(DEFAULT_POSE_128x64, MARKET.size, model.frame)
        return {"arch": model.arch, "size": list(model.frame), "joints": list(S.JOINT_NAMES),
                "limbs": [list(l) for l in S.LIMBS], "colors": [list(c) for c in S.LIMB_COLORS],
                "default_pose": default.tolist(), "max_upload_bytes": MAX_UPLOAD_BYTES,
                "has_samples": bool(gallery.items)}

    @app.get("/api/gallery")
    def poses():
        return {"poses": gallery.items}

    @app.get("/api/sample")
    def sample(name: str | None = None):
        image, _ = gallery.sample(name)
        return {"name": name or gallery.items[0]["name"], "image": data_url(image, "JPEG")}

    @app.post("/api/transfer")
    def transfer(image: UploadFile | None = File(None), sample: str | None = Form(None),
                 target_keypoints: str = Form(...), source_keypoints: str | None = Form(None)):
        app.state.requests += 1
        return _transfer(model, gallery, pose_lock, image, sample, target_keypoints, source_keypoints)

    return app


def validation_message(errors) -> str:
    """FastAPI's list of field errors as the API's one line: ``target_keypoints: field required``."""
    parts = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
        message = str(error.get("msg", "invalid")).strip()
        message = message[:1].lower() + message[1:]
        parts.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(parts) or "invalid request"


def _inside(kp: np.ndarray, size: tuple[int, int]) -> bool:
    miss = K.missing_mask(kp)
    return bool(np.all((kp[~miss, 0] < size[0]) & (kp[~miss, 1] < size[1])))


def _clip_missing(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Joints dragged off the canvas count as missing (the canvas is the model frame)."""
    out = kp.copy()
    out[(out[:, 0] >= size[0]) | (out[:, 1] >= size[1])] = S.MISSING
    return out


def server_config(app: FastAPI, host: str, port: int, header_timeout: float = HEADER_TIMEOUT):
    """The uvicorn configuration of :func:`serve`: h11 with a deadline for unfinished request headers."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol_with_timeout(header_timeout),
                          ws="none", lifespan="off")


def serve(model: InferenceModel, host: str = "127.0.0.1", port: int = 8000, data: str | Path | None = None) -> None:
    """Run the demo with uvicorn until interrupted (answering only to ``host``'s names and loopback)."""
    import uvicorn

    names = allowed_host_names(host)
    app = create_app(model, data, allowed_hosts=names)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the demo has no authentication; anyone who can reach it can use it", host)
    if names is None:
        log.warning("serving on every interface: requests are answered whatever their Host header says")
    print(f"posetransfer demo on http://{host}:{port}/  (Ctrl+C stops)")
    uvicorn.Server(server_config(app, host, port)).run()
