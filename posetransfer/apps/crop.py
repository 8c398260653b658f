"""Person crop: from a photo of any size to the model's input frame, and back.

Why: the generators are trained on people that fill a fixed frame (Market 128×64, DeepFashion 256×176).
A user's photo is first cropped to a box around the person — the keypoints' bounding box plus a margin,
grown to the *aspect ratio of the model input* so nothing is stretched — then resized to the model's size.
Where the box leaves the photo it is padded (edge pixels or grey). The keypoints go through exactly the
same transform, and :func:`paste_back` / :func:`box_to_photo` undo it for the generated image.

All boxes are integer pixel boxes in the photo's coordinates and may extend beyond the photo.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import skeleton as S
from ..data import keypoints as K
from ..errors import DataError, PoseError
from ..viz import resize

PadMode = Literal["edge", "grey"]

#: Extra room around the keypoints' bounding box, as fractions of its height. The keypoints stop at the
#: ankles and the eyes/ears, so the box needs room for the feet (below) and the top of the head (above).
MARGIN_TOP = 0.18
MARGIN_BOTTOM = 0.12
#: Horizontal room, as a fraction of the bounding box height (arms and clothes stick out beyond wrists).
MARGIN_SIDE = 0.10
#: Fewer present joints than this cannot define a person box.
MIN_JOINTS = 3
GREY = 128
#: How far joints may lie beyond the photo, as a fraction of its height / width. A person cut off by the
#: frame has a few joints just outside it; joints farther out do not belong to a person in this photo, and
#: unbounded ones would make the crop box (and the padding) as large as an attacker likes.
MAX_OUTSIDE = 0.5
#: Pixel budget of a crop box: at most this many times the photo's pixels, at least
#: :data:`MIN_CROP_BUDGET` (small photos), never more than :data:`MAX_CROP_PIXELS` (the crop is allocated).
CROP_AREA_FACTOR = 8
MIN_CROP_BUDGET = 4_000_000
MAX_CROP_PIXELS = 64_000_000


@dataclass(frozen=True)
class CropBox:
    """A box (top, left, height, width) in photo pixels; ``height/width`` = the model's aspect ratio."""

    top: int
    left: int
    height: int
    width: int

    @classmethod
    def full(cls, size: tuple[int, int]) -> "CropBox":
        return cls(0, 0, int(size[0]), int(size[1]))

    def to_json(self) -> dict:
        return {"top": self.top, "left": self.left, "height": self.height, "width": self.width}


def check_keypoints_near(keypoints: np.ndarray, photo_size: tuple[int, int], where: str = "keypoints") -> None:
    """Every present joint must lie inside the photo or at most :data:`MAX_OUTSIDE` of its size beyond it."""
    kp = np.asarray(keypoints)
    present = ~K.missing_mask(kp)
    h, w = int(photo_size[0]), int(photo_size[1])
    lo = np.array([-MAX_OUTSIDE * h, -MAX_OUTSIDE * w])
    hi = np.array([(1 + MAX_OUTSIDE) * h, (1 + MAX_OUTSIDE) * w])
    far = present & np.any((kp < lo) | (kp >= hi), axis=1)
    if far.any():
        j = int(np.argmax(far))
        raise DataError(f"{where}: joint {j} ({S.JOINT_NAMES[j]}) at (y={kp[j, 0]}, x={kp[j, 1]}) lies far outside "
                        f"the {h}x{w} photo (at most {MAX_OUTSIDE:.0%} of its size beyond the edge)")


def check_box(box: CropBox, photo_size: tuple[int, int], where: str = "photo") -> None:
    """Refuse a crop box beyond the pixel budget *before* anything of its size is allocated."""
    h, w = int(photo_size[0]), int(photo_size[1])
    budget = min(MAX_CROP_PIXELS, max(MIN_CROP_BUDGET, CROP_AREA_FACTOR * h * w))
    if box.height * box.width > budget:
        raise DataError(f"{where}: the person's crop box ({box.height}x{box.width} at y={box.top}, x={box.left}) "
                        f"reaches far outside the {h}x{w} photo ({box.height * box.width} pixels, the limit is "
                        f"{budget}); check the keypoints")


def box_from_keypoints(keypoints: np.ndarray, model_size: tuple[int, int], where: str = "keypoints",
                       photo_size: tuple[int, int] | None = None) -> CropBox:
    """The crop box around a person: keypoint bounds + margins, grown to the model's aspect ratio.

    The box is centred on the keypoints' box horizontally and on the margin-extended box vertically;
    whichever side is too short for the aspect ratio is grown symmetrically. With ``photo_size`` the joints
    are first checked to lie near that photo (:func:`check_keypoints_near`).
    """
    kp = np.asarray(keypoints)
    present = ~K.missing_mask(kp)
    if int(present.sum()) < MIN_JOINTS:
        raise PoseError(f"{where}: only {int(present.sum())} keypoints present, cannot locate the person "
                        f"(need at least {MIN_JOINTS})")
    if photo_size is not None:
        check_keypoints_near(kp, photo_size, where)
    ys, xs = kp[present, 0].astype(float), kp[present, 1].astype(float)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    span = max(y1 - y0, x1 - x0, 8.0)
    top, bottom = y0 - MARGIN_TOP * span, y1 + MARGIN_BOTTOM * span
    left, right = x0 - MARGIN_SIDE * span, x1 + MARGIN_SIDE * span
    height, width = bottom - top, right - left
    ratio = model_size[0] / model_size[1]   # H / W
    if height / width < ratio:
        new_height = width * ratio
        top -= (new_height - height) / 2
        height = new_height
    else:
        new_width = height / ratio
        left -= (new_width - width) / 2
        width = new_width
    h = max(int(round(height)), 2)
    w = max(int(round(h / ratio)), 1)
    cy, cx = top + height / 2, left + width / 2
    return CropBox(int(round(cy - h / 2)), int(round(cx - w / 2)), h, w)


def crop_image(image: np.ndarray, box: CropBox, model_size: tuple[int, int], pad: PadMode = "edge",
               where: str = "photo") -> np.ndarray:
    """Cut ``box`` out of ``image`` (padding where it leaves the photo) and resize it to ``model_size``.

    Only the box is allocated (not the padded photo), and only after :func:`check_box` accepted its size.
    """
    h, w = image.shape[:2]
    check_box(box, (h, w), where)
    bottom, right = box.top + box.height, box.left + box.width
    if box.top >= 0 and box.left >= 0 and bottom <= h and right <= w:
        patch = image[box.top:bottom, box.left:right]
    elif pad == "edge":   # edge padding = the nearest row / column of the photo
        rows = np.clip(np.arange(box.top, bottom), 0, h - 1)
        cols = np.clip(np.arange(box.left, right), 0, w - 1)
        patch = image[np.ix_(rows, cols)]
    else:
        patch = np.full((box.height, box.width) + image.shape[2:], GREY, dtype=image.dtype)
        top, left = max(0, box.top), max(0, box.left)
        inside = image[top:min(h, bottom), left:min(w, right)]
        patch[top - box.top:top - box.top + inside.shape[0], left - box.left:left - box.left + inside.shape[1]] = inside
    return np.ascontiguousarray(resize(patch, model_size))


def keypoints_to_model(keypoints: np.ndarray, box: CropBox, model_size: tuple[int, int]) -> np.ndarray:
    """Photo keypoints → model-frame keypoints (joints that leave the frame become missing)."""
    cropped = K.crop_keypoints(keypoints, box.top, box.left, None)
    return K.rescale_keypoints(cropped, (box.height, box.width), model_size)


def keypoints_to_photo(keypoints: np.ndarray, box: CropBox, model_size: tuple[int, int]) -> np.ndarray:
    """Model-frame keypoints → photo keypoints (the inverse of :func:`keypoints_to_model`)."""
    kp = np.asarray(keypoints)
    miss = K.missing_mask(kp)
    scale = np.array([box.height / model_size[0], box.width / model_size[1]])
    out = np.rint((kp + 0.5) * scale - 0.5 + np.array([box.top, box.left])).astype(np.int64)
    out[miss] = S.MISSING
    return out


def box_to_photo(generated: np.ndarray, box: CropBox, photo_size: tuple[int, int]) -> np.ndarray:
    """The generated image at the crop box's size in the photo, cut to the part inside the photo."""
    full = resize(generated, (box.height, box.width))
    top, left = max(0, box.top), max(0, box.left)
    bottom, right = min(photo_size[0], box.top + box.height), min(photo_size[1], box.left + box.width)
    return np.ascontiguousarray(full[top - box.top:bottom - box.top, left - box.left:right - box.left])


def paste_back(photo: np.ndarray, generated: np.ndarray, box: CropBox) -> np.ndarray:
    """A copy of ``photo`` with ``generated`` resized into ``box`` (the part of the box inside the photo)."""
    out = photo.copy()
    inside = box_to_photo(generated, box, photo.shape[:2])
    top, left = max(0, box.top), max(0, box.left)
    out[top:top + inside.shape[0], left:left + inside.shape[1]] = inside
    return out


def box_for_sequence(sequence: list[np.ndarray], model_size: tuple[int, int], where: str = "poses") -> CropBox:
    """One box for a whole pose sequence: the box of all frames' joints together (keeps global motion)."""
    present = [kp[~K.missing_mask(kp)] for kp in sequence]
    present = [p for p in present if len(p)]
    if not present:
        raise PoseError(f"{where}: no keypoints in any frame")
    joints = np.concatenate(present, axis=0)
    lo, hi = joints.min(axis=0), joints.max(axis=0)
    # Four fake joints at the corners of the union box: box_from_keypoints only looks at the bounds.
    corners = np.full((S.NUM_JOINTS, 2), S.MISSING, dtype=np.int64)
    corners[0] = lo
    corners[1] = hi
    corners[2] = (lo[0], hi[1])
    corners[3] = (hi[0], lo[1])
    return box_from_keypoints(corners, model_size, where=where)
