"""``posetransfer animate``: one person photo driven by a pose sequence → a video (mp4 or GIF).

Poses come from a folder of keypoints JSON files (sorted by name) or from a driving video (the pose
estimator runs on every frame). The whole sequence shares one crop box — the box around all frames'
joints — so the person's motion across the frame survives (a per-frame crop would pin every pose to the
centre). Frames where the estimator finds nobody repeat the previous pose, so the timing stays right.

Encoding uses imageio's ffmpeg plugin; the ffmpeg binary ships inside the imageio-ffmpeg wheel.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .. import viz
from ..data import keypoints as K
from ..errors import ConfigError, DataError, PoseError
from ..io import atomic_path, read_image
from . import crop as C
from ..inference import InferenceModel
from .poses import (CropMode, Pose, estimate_pose, prepare_source, read_pose_file, require_estimator,
                    source_pose_for)

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")
DEFAULT_FPS = 10.0
#: Longest side of an output frame: ``--scale`` enlarges for viewing, not to fill memory with one video.
MAX_FRAME_SIDE = 8192


@dataclass
class PoseSequence:
    poses: list[Pose]
    fps: float = DEFAULT_FPS
    frames: list[np.ndarray] = field(default_factory=list)   # driving frames (video input only)
    repeated: int = 0                                         # frames without a person (pose repeated)


def read_pose_folder(folder: Path) -> PoseSequence:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if not files:
        raise DataError(f"{folder}: no keypoints .json files in this folder")
    return PoseSequence([read_pose_file(p) for p in files])


def read_video(path: Path, every: int = 1, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    """Decoded RGB frames (every ``every``-th, at most ``max_frames``) and the frame rate after subsampling."""
    import imageio.v2 as imageio

    frames: list[np.ndarray] = []
    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
    except Exception as exc:  # noqa: BLE001 - imageio/ffmpeg raise many types for broken files
        raise DataError(f"{path}: not a readable video ({_first_line(exc)})") from None
    try:
        fps = float(reader.get_meta_data().get("fps") or DEFAULT_FPS)
        for index, frame in enumerate(reader):
            if index % every:
                continue
            frames.append(np.asarray(frame)[..., :3].astype(np.uint8))
            if max_frames is not None and len(frames) >= max_frames:
                break
    except Exception as exc:  # noqa: BLE001
        if not frames:
            raise DataError(f"{path}: not a readable video ({_first_line(exc)})") from None
        log.warning("%s: stopped reading after %d frames (%s)", path, len(frames), _first_line(exc))
    finally:
        reader.close()
    if not frames:
        raise DataError(f"{path}: the video has no frames")
    return frames, fps / every


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:200]}" if text else exc.__class__.__name__


def read_pose_video(path: Path, every: int = 1, max_frames: int | None = None, progress: bool = True,
                    ) -> PoseSequence:
    """Estimate the pose on every frame of a driving video."""
    from tqdm import tqdm

    require_estimator(str(path))
    frames, fps = read_video(path, every, max_frames)
    poses: list[Pose] = []
    repeated = 0
    last: Pose | None = None
    for i, frame in enumerate(tqdm(frames, desc="poses", unit="frame", disable=not progress)):
        try:
            last = estimate_pose(frame, f"{path} (frame {i * every})")
        except PoseError:
            if last is None:
                continue
            repeated += 1
        poses.append(last)
    if not poses:
        raise PoseError(f"{path}: no person found in any frame")
    if repeated:
        log.warning("%s: no person in %d frame(s); the previous pose was repeated", path, repeated)
    return PoseSequence(poses, fps, frames, repeated)


def sequence_to_model(sequence: PoseSequence, size: tuple[int, int], crop: CropMode = "auto") -> list[np.ndarray]:
    """All poses in the model frame, through one shared crop box (or rescaled when already in a model frame)."""
    frames = {p.frame for p in sequence.poses}
    identity = crop == "none" or (crop == "auto" and frames == {tuple(size)})
    if identity:
        return [K.rescale_keypoints(p.keypoints, p.frame or size, size) for p in sequence.poses]
    box = C.box_for_sequence([p.keypoints for p in sequence.poses], size, where=sequence.poses[0].where)
    return [C.keypoints_to_model(p.keypoints, box, size) for p in sequence.poses]


def write_video(frames: Iterable[np.ndarray], out: Path, fps: float) -> None:
    """mp4 (H.264 via the ffmpeg that imageio-ffmpeg ships) or GIF by suffix, written atomically.

    ``frames`` may be a generator: an mp4 takes each frame as it comes, so ffmpeg (its own process) encodes
    while the next frames are generated; a GIF needs them all first (PIL writes it in one call)."""
    if out.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        with atomic_path(out) as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(20, int(round(1000 / fps))), loop=0)
        return
    # imageio-ffmpeg's writer directly: imageio's FFMPEG plugin picks the container from the file suffix,
    # and the atomic temporary name ends in ".tmp", so the container is named explicitly here.
    import imageio_ffmpeg

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise DataError(f"{out}: no frames to write")
    height, width = first.shape[:2]
    height, width = height + (-height) % 16, width + (-width) % 16
    with atomic_path(out) as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), (width, height), fps=fps, codec="libx264", quality=8,
                                             macro_block_size=16, output_params=["-f", "mp4"],
                                             ffmpeg_log_level="error")
        writer.send(None)
        try:
            for frame in itertools.chain([first], frames):
                writer.send(_pad_to_block(frame, 16))
        finally:
            writer.close()


def _pad_to_block(frame: np.ndarray, block: int) -> np.ndarray:
    """H.264 with yuv420p wants sizes divisible by the macro block: pad with black at the bottom/right."""
    h, w = frame.shape[:2]
    ph, pw = (-h) % block, (-w) % block
    if ph or pw:
        frame = np.pad(frame, ((0, ph), (0, pw), (0, 0)))
    return np.ascontiguousarray(frame)


def animate(model: InferenceModel, source: str | os.PathLike, poses: str | os.PathLike, out: str | os.PathLike, *,
            source_pose: str | os.PathLike | None = None, gif: bool = False, fps: float | None = None,
            every: int = 1, max_frames: int | None = None, with_pose: bool = False, scale: int = 1,
            crop: CropMode = "auto", pad: C.PadMode = "edge", batch_size: int = 8, progress: bool = True,
            ) -> dict:
    """Generate one frame per pose and encode them; returns a summary (frames, fps, outputs)."""
    from tqdm import tqdm

    source, poses, out = Path(source), Path(poses), Path(out)
    if every < 1 or scale < 1 or batch_size < 1:
        raise ConfigError("--every, --scale and --batch-size must be >= 1")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"--fps must be a positive number, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}")
    side = max(model.frame[0], model.frame[1] * (2 if with_pose else 1))
    if scale * side > MAX_FRAME_SIDE:
        raise ConfigError(f"--scale {scale} makes {scale * side}-pixel frames; at most {MAX_FRAME_SIDE // side} "
                          f"for this {model.frame[0]}x{model.frame[1]} model (frames up to {MAX_FRAME_SIDE} px)")
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise ConfigError(f"{out}: output must end in .mp4 or .gif")
    photo = read_image(source)
    pose = source_pose_for(source, Path(source_pose) if source_pose else None, photo)
    prepared = prepare_source(photo, pose, model.frame, crop, pad)
    if not poses.exists():
        raise DataError(f"{poses}: poses not found")
    if poses.is_dir():
        sequence = read_pose_folder(poses)
        if max_frames is not None:
            sequence.poses = sequence.poses[:max_frames * every]
        sequence.poses = sequence.poses[::every]
    elif poses.suffix.lower() in VIDEO_SUFFIXES:
        sequence = read_pose_video(poses, every, max_frames, progress)
    else:
        raise DataError(f"{poses}: expected a folder of keypoints JSON files or a video ({', '.join(VIDEO_SUFFIXES)})")
    targets = sequence_to_model(sequence, model.frame, crop)
    frames: list[np.ndarray] = []

    def generate() -> Iterator[np.ndarray]:
        with tqdm(total=len(targets), desc="animate", unit="frame", disable=not progress) as bar:
            for start in range(0, len(targets), batch_size):
                chunk = targets[start:start + batch_size]
                results = model.generate_batch([prepared.image] * len(chunk), [prepared.keypoints] * len(chunk),
                                               chunk)
                for kp, result in zip(chunk, results):
                    frame = viz.hstack([viz.pose_image(kp, model.frame), result], gap=0) if with_pose else result
                    frames.append(viz.upscale(frame, scale))
                    yield frames[-1]
                bar.update(len(chunk))

    rate = float(fps or sequence.fps)
    written = [out]
    write_video(generate(), out, rate)   # an mp4 is encoded while the frames are generated
    if gif and out.suffix.lower() != ".gif":
        gif_path = out.with_suffix(".gif")
        write_video(frames, gif_path, rate)
        written.append(gif_path)
    return {"frames": len(frames), "fps": rate, "written": [str(p) for p in written],
            "repeated_poses": sequence.repeated, "size": list(frames[0].shape[:2])}

