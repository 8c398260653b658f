"""One synthetic person in a picture: the parts drawn far-to-near on a scene, and the keypoints they imply.

Why the keypoints are computed here, after drawing: a joint is annotated only where the picture shows it
(-1 when it is outside the image, when a face point turns away from the camera, or when another part is
drawn over it), which is known only once the parts are on the canvas.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ... import skeleton as S
from ...errors import DataError
from .. import keypoints as K
from .appearance import Identity, sample_identity
from .kinds import resolve_size
from .raster import (F32, Canvas, Capsule, blend, clip, colour_capsules, finish, garment_colour, needs_phi, paint,
                     planes, solid_colour)
from .rig import (FACE_POINTS, FOREARM, HAND, MOUTH, POINT_INDEX, SHIN, THIGH, UPPER_ARM, MissingPoint, PoseParams,
                  Rig, project, rig_from_keypoints, sample_pose)
from .sampling import STREAM_SCENE, draws
from .scene import Scene, render_background, sample_scene, shadow, torso_texture
from .vecmath import dot, normalize

# Part ids in the label map (which part is on top at each pixel); 0 = background.
(P_TORSO, P_NECK, P_HEAD, P_HAIR, P_RARM, P_LARM, P_RLEG, P_LLEG, P_RSHOE, P_LSHOE, P_SKIRT, P_PACK,
 P_BUN) = range(1, 14)

#: Parts on which a joint counts as visible (an arm part runs from the shoulder to the end of the hand, a
#: leg part from the hip to the ankle). Joints not listed
#: (neck, shoulders, hips) lie on the torso outline and are visible whenever they are inside the image.
_VISIBLE_ON: dict[int, frozenset[int]] = {
    0: frozenset({P_HEAD}), 14: frozenset({P_HEAD}), 15: frozenset({P_HEAD}),
    16: frozenset({P_HEAD, P_HAIR}), 17: frozenset({P_HEAD, P_HAIR}),
    3: frozenset({P_RARM}), 4: frozenset({P_RARM}), 6: frozenset({P_LARM}), 7: frozenset({P_LARM}),
    9: frozenset({P_RLEG, P_SKIRT}), 10: frozenset({P_RLEG, P_RSHOE, P_SKIRT}),
    12: frozenset({P_LLEG, P_SKIRT}), 13: frozenset({P_LLEG, P_LSHOE, P_SKIRT}),
}


# --------------------------------------------------------------------------------------------------
# The parts
# --------------------------------------------------------------------------------------------------
def _draw_torso(cv: Canvas, rig: Rig, ident: Identity, skin: np.ndarray) -> None:
    """The torso: a rounded trapezoid with the person's shirt texture looked up at (u, phi)."""
    sc = rig.scale
    (nx, ny), (hx, hy) = rig.p("neck"), rig.p("hip_c")
    ln = math.hypot(hx - nx, hy - ny) or 1.0
    ax, ay = (hx - nx) / ln, (hy - ny) / ln
    hem = 0.02 if ident.tucked else 0.04
    top = (nx - ax * 0.035 * sc, ny - ay * 0.035 * sc)
    bottom = (hx + ax * hem * sc, hy + ay * hem * sc)
    w_sh, w_hp = rig.torso_w
    geo = cv.trapezoid(top, bottom, w_sh * sc, w_hp * sc, corner=0.045 * sc)
    if geo is None:
        return
    box, alpha, un, s, perp, length = geo
    texture = torso_texture(ident)
    n_u, n_phi = texture.shape[1:]
    rows = un * (n_u - 1)
    rows += 0.5
    # column: phi = arcsin(s) - yaw wrapped to [-π, π); the offset keeps the value positive for the cast
    cols = np.arcsin(s)
    cols *= n_phi / (2 * math.pi)
    cols += (math.pi - rig.yaw) * n_phi / (2 * math.pi) + 4 * n_phi
    index = rows.astype(np.intp)
    index *= n_phi
    index += cols.astype(np.intp) % n_phi
    colour = np.take(texture.reshape(3, -1), index, axis=1)
    cv.composite(box, alpha, colour, cv.shade(s, perp), P_TORSO)


def _draw_skirt(cv: Canvas, rig: Rig, ident: Identity) -> None:
    """A skirt or a dress's lower part: a trapezoid from the waist, flared to cover both thighs."""
    sc = rig.scale
    (wx, wy), (hx, hy) = rig.p("waist"), rig.p("hip_c")
    ln = math.hypot(hx - wx, hy - wy) or 1.0
    bottom = (wx + (hx - wx) / ln * ident.skirt_length * sc, wy + (hy - wy) / ln * ident.skirt_length * sc)
    w_top = rig.torso_w[1] * sc * 1.03
    flare = w_top * 1.35
    frac = min(1.2, max(0.0, (ident.skirt_length - 0.075) / (THIGH * ident.leg)))
    for side in ("r", "l"):  # the hem must cover both thighs
        hip, knee = rig.p(side + "_hip"), rig.p(side + "_knee")
        at = hip[0] + frac * (knee[0] - hip[0])
        flare = max(flare, abs(at - bottom[0]) + 0.05 * sc * ident.limb)
    geo = cv.trapezoid((wx, wy), bottom, w_top, flare, corner=0.0)
    if geo is None:
        return
    box, alpha, un, s, perp, length = geo
    u = un * (length / sc) + 0.3
    phi = np.arcsin(s) - rig.yaw if needs_phi(ident.bottom) else None
    cv.composite(box, alpha, garment_colour(ident.bottom, u, phi), cv.shade(s, perp, 0.85), P_SKIRT)


def _draw_head(cv: Canvas, rig: Rig, ident: Identity, skin: np.ndarray, detail: bool) -> None:
    """An ellipse textured as a sphere: hair where the head-frame normal is above the hairline."""
    sc = rig.scale
    cx, cy = rig.p("head")
    rx, ry = ident.head * sc, 1.12 * ident.head * sc
    box = cv.pixel_box(cx - rx - 1, cx + rx + 1, cy - ry - 1, cy + ry + 1)
    if box is None:
        return
    ya, yb, xa, xb = box
    nx = (cv.gx[xa:xb] - cx) * (1.0 / rx)
    ny = (cv.gy[ya:yb] - cy) * (1.0 / ry)   # (h, 1) and (w,): broadcast on first use
    rr = nx * nx + ny * ny
    nz = 1.0 - rr
    np.maximum(nz, 0.0, out=nz)
    np.sqrt(nz, out=nz)
    alpha = np.sqrt(rr)
    alpha *= -rx
    alpha += rx + 0.5
    clip(alpha, 0.0, 1.0, out=alpha)
    # head-frame normal = transpose(camera←head) · camera-frame normal (camera y is up: -ny)
    m = rig.cam_head
    hy = nz * m[2][1] + (nx * m[0][1] - ny * m[1][1])
    hz = nz * m[2][2] + (nx * m[0][2] - ny * m[1][2])
    # the hairline runs from the front value (face) to the back value (nape) around the sides
    k = hz * 1.4 + 0.49
    clip(k, 0.0, 1.0, out=k)
    k *= ident.hairline_front - ident.hairline_back
    k += ident.hairline_back
    if detail:
        hx = nz * m[2][0] + (nx * m[0][0] - ny * m[1][0])
        hair = hy - k
        hair *= rx * 0.6
        clip(hair, 0.0, 1.0, out=hair)
        if ident.hair_style != "long":  # ears stay visible
            ear = (0.25 - np.abs(hy + 0.02) - np.abs(np.abs(hx) - 0.96) * 0.8) * 8
            hair *= 1.0 - clip(ear, 0.0, 1.0, out=ear)
        colour = blend(skin, hair, ident.hair)
        front = hz > 0
        for j in (14, 15):  # eyes and brows
            ex, ey, ez = FACE_POINTS[j][0]
            dy = (hy - ey) * 1.3
            e = (0.13 ** 2 - (hx - ex) ** 2 - dy * dy - (hz - ez) ** 2) * 60
            colour = blend(colour, clip(e, 0.0, 1.0, out=e) * front, (0.1, 0.07, 0.06))
            brow = (np.abs(hx - ex) < 0.17) & (np.abs(hy - 0.27) < 0.045) & (hz > 0.5) & (hy < ident.hairline_front)
            colour = blend(colour, brow.astype(F32), np.asarray(ident.hair) * 0.8)
        mouth = (np.abs(hx) < 0.2) & (np.abs(hy + 0.5) < 0.06) & (hz > 0.4)
        colour = blend(colour, mouth.astype(F32), skin * np.array([0.7, 0.45, 0.45], dtype=F32))
        nose = (0.012 - hx * hx - ((hy + 0.22) * 0.7) ** 2) * 100
        colour = blend(colour, clip(nose, 0.0, 0.5, out=nose) * (hz > 0.6), skin * 0.75)
    else:
        colour = solid_colour(rr.shape, skin)
        paint(colour, hy > k, ident.hair)
    lam = nz * cv.lz
    lam += nx * cv.lx
    lam += ny * cv.ly
    np.maximum(lam, 0.0, out=lam)
    lam *= cv.diffuse
    lam += cv.ambient
    cv.composite(box, alpha, colour, lam, P_HEAD)
    if not detail:  # small heads: eyes and mouth are a pixel or two, written directly
        _face_dots(cv, rig, skin)


def _face_dots(cv: Canvas, rig: Rig, skin: np.ndarray) -> None:
    """Eyes and mouth of a small head as single shaded pixels, where the head is on top and they face us."""
    dark = (0.1, 0.07, 0.06)
    lips = (0.6 * float(skin[0]), 0.35 * float(skin[1]), 0.35 * float(skin[2]))
    marks = [(S.JOINT_NAMES[14], rig.face_visible.get(14, True), dark, 0.6),
             (S.JOINT_NAMES[15], rig.face_visible.get(15, True), dark, 0.6),
             ("mouth", dot(rig.cam_head[2], normalize(MOUTH)) > 0.35, lips, 0.5)]
    skin_mean = max(1e-3, float(skin.sum()))
    for name, seen, colour, strength in marks:
        x, y = rig.xy[POINT_INDEX[name]]
        if not seen or x != x:
            continue
        xi, yi = int(round(x)), int(round(y))
        if 0 <= yi < cv.h and 0 <= xi < cv.w and cv.part_at(yi, xi) == P_HEAD:
            r, g, b = cv.img[:, yi, xi].tolist()
            lit = (r + g + b) / skin_mean  # keep the local shading
            cv.img[:, yi, xi] = (r + strength * (colour[0] * lit - r), g + strength * (colour[1] * lit - g),
                              b + strength * (colour[2] * lit - b))


def _draw_pack(cv: Canvas, rig: Rig, ident: Identity) -> None:
    """A backpack: a rounded trapezoid on the back, its flap darker."""
    sc = rig.scale
    cx, cy = rig.p("pack")
    (nx, ny), (hx, hy) = rig.p("neck"), rig.p("hip_c")
    ln = math.hypot(hx - nx, hy - ny) or 1.0
    ax, ay = (hx - nx) / ln * 0.075 * sc, (hy - ny) / ln * 0.075 * sc
    geo = cv.trapezoid((cx - ax, cy - ay), (cx + ax, cy + ay), rig.pack_w * sc, rig.pack_w * sc * 1.05,
                       corner=0.025 * sc)
    if geo is not None:
        box, alpha, un, s, perp, length = geo
        col = np.asarray(ident.backpack, dtype=F32)
        colour = blend(col, (un < 0.35).astype(F32) * 0.3, col * 0.6)
        cv.composite(box, alpha, colour, cv.shade(s, perp), P_PACK)


def draw_person(cv: Canvas, rig: Rig, ident: Identity, detail: bool) -> None:
    """Draw every part far-to-near (painter's algorithm on the parts' depth, body heights).

    The capsules (neck, hair, arms, legs, shoes) are rasterised and coloured together first
    (:meth:`Canvas.capsules`, :func:`colour_capsules`), then every part is blended in depth order.
    ``detail`` (large images): eyes, brows, mouth and ears shaded into the head and shoes with soles;
    without it the face is a few dots and the shoes are flat.
    """
    parts, caps = _queue_parts(cv, rig, ident, detail)
    batch = cv.capsules(caps)
    keep, premultiplied = colour_capsules(cv, caps, batch, rig.scale) if batch.kept else (None, None)
    slot = {i: j for j, i in enumerate(batch.kept)}
    parts.sort(key=lambda p: (p[0], p[1]))
    for _, _, what in parts:
        if not isinstance(what, int):
            try:
                what()
            except MissingPoint:
                pass
        elif what in slot:
            j = slot[what]
            seg = slice(batch.offsets[j], batch.offsets[j + 1])
            cv.paste(batch.boxes[j], keep[seg], premultiplied[:, seg], batch.alpha[seg], caps[what].part)


#: A queued part: (depth key, tie-break order, a drawing call or the index of a capsule).
_Part = tuple[float, int, Callable[[], None] | int]


def _queue_parts(cv: Canvas, rig: Rig, ident: Identity, detail: bool) -> tuple[list[_Part], list[Capsule]]:
    """Every part of the person with its depth key; capsules are collected to be rasterised in one pass."""
    sc = rig.scale
    lf = ident.limb * sc
    skin = np.asarray(ident.skin, dtype=F32)
    hair = np.asarray(ident.hair, dtype=F32)
    z = rig.z
    parts: list[_Part] = []
    caps: list[Capsule] = []

    def capsule(key: float, order: int, a: str, b: str | None, r0: float, r1: float, part: int,
                colour: np.ndarray, **style) -> None:
        """Queue a capsule from joint ``a`` to ``b`` (None: a blob just below ``a``); skipped if one is unknown."""
        try:
            p0 = rig.p(a)
            p1 = rig.p(b) if b is not None else (p0[0], p0[1] + 0.01)
        except MissingPoint:  # a part whose end point is unknown (drawing through given keypoints)
            return
        parts.append((key, order, len(caps)))
        caps.append(Capsule(p0, p1, r0, r1, part, colour, **style))

    torso_key = 0.5 * (z("neck") + z("hip_c")) - 0.04
    parts.append((torso_key, 0, lambda: _draw_torso(cv, rig, ident, skin)))
    capsule(torso_key - 0.001, 1, "neck", "head", 0.027 * lf, 0.025 * lf, P_NECK, skin, flat=0.8)
    parts.append((z("head") + 0.002, 2, lambda: _draw_head(cv, rig, ident, skin, detail)))
    if ident.hair_style == "long":
        r = ident.head * sc
        capsule(z("hair_end"), 3, "hair_top", "hair_end", 0.98 * r, 0.92 * r, P_HAIR, hair)
    elif ident.hair_style == "bun":
        capsule(z("bun"), 3, "bun", None, 0.5 * ident.head * sc, 0.5 * ident.head * sc, P_BUN, hair)
    leg_keys = _queue_limbs(rig, ident, detail, torso_key, skin, capsule)
    if ident.bottom_kind in ("skirt", "dress"):
        parts.append((max(leg_keys) + 0.001, 30, lambda: _draw_skirt(cv, rig, ident)))
    if ident.backpack is not None:
        parts.append((z("pack"), 31, lambda: _draw_pack(cv, rig, ident)))
    return parts, caps


def _queue_limbs(rig: Rig, ident: Identity, detail: bool, torso_key: float, skin: np.ndarray,
                 capsule: Callable[..., None]) -> list[float]:
    """Queue the arms, legs and shoes (sleeves and trouser legs cover them up to their length).

    Returns the legs' depth keys (a skirt goes over the nearest of them).
    """
    lf = ident.limb * rig.scale
    z = rig.z
    # arms: the forearm part runs on to the end of the hand (skin beyond the sleeve)
    sleeve_len = ident.sleeve * (UPPER_ARM + FOREARM + 0.02)
    cover_ua = min(1.0, sleeve_len / UPPER_ARM)
    cover_fa = min(1.0, max(0.0, (sleeve_len - UPPER_ARM) / (FOREARM + HAND)))
    for i, (sd, part) in enumerate((("r", P_RARM), ("l", P_LARM))):
        sh, el, hn = sd + "_shoulder", sd + "_elbow", sd + "_hand"
        capsule(0.5 * (z(sh) + z(el)), 10 + 2 * i, sh, el, 0.033 * lf, 0.027 * lf, part, skin,
                garment=ident.top if cover_ua > 0 else None, cover=cover_ua, u0=0.0)
        capsule(0.5 * (z(el) + z(hn)) + 0.001, 11 + 2 * i, el, hn, 0.027 * lf, 0.016 * lf, part, skin,
                garment=ident.top if cover_fa > 0 else None, cover=cover_fa, u0=UPPER_ARM)
    # legs
    thigh, shin_len = THIGH * ident.leg, SHIN * ident.leg
    cover = ident.leg_cover * (thigh + shin_len)
    cover_th = min(1.0, cover / thigh)
    cover_sh = min(1.0, max(0.0, (cover - thigh) / shin_len))
    fat = 1.12 if ident.bottom_kind == "trousers" else 1.0
    leg_keys = []
    for i, (sd, part) in enumerate((("r", P_RLEG), ("l", P_LLEG))):
        hp, kn, an = sd + "_hip", sd + "_knee", sd + "_ankle"
        # thighs always go under the torso: the shirt hangs over the top of the trousers
        k_th = min(0.5 * (z(hp) + z(kn)) - 0.06, torso_key - 0.002)
        k_sh = 0.5 * (z(kn) + z(an)) - 0.059
        leg_keys += [k_th, k_sh]
        capsule(k_th, 20 + 3 * i, hp, kn, 0.05 * lf * fat, 0.039 * lf * fat, part, skin,
                garment=ident.bottom if cover_th > 0 else None, cover=cover_th, u0=0.3)
        capsule(k_sh, 21 + 3 * i, kn, an, 0.039 * lf * fat, 0.028 * lf * fat, part, skin,
                garment=ident.bottom if cover_sh > 0 else None, cover=cover_sh, u0=0.3 + THIGH)
    shoes = np.asarray(ident.shoes, dtype=F32)
    for i, (sd, part) in enumerate((("r", P_RSHOE), ("l", P_LSHOE))):
        # detailed shoes are shaded and show their sole from the side; small ones (a few pixels) are flat
        capsule(0.5 * (z(sd + "_heel") + z(sd + "_toe")) - 0.058, 22 + 3 * i, sd + "_heel", sd + "_toe",
                0.03 * lf, 0.026 * lf, part, shoes, **({"sole": ident.soles} if detail else {"flat": 0.85}))
    return leg_keys


# --------------------------------------------------------------------------------------------------
# Rendering: rig → canvas → image and keypoints
# --------------------------------------------------------------------------------------------------
def _rig_keypoints(rig: Rig, cv: Canvas) -> np.ndarray:
    """(18, 2) int (y, x) keypoints of the drawn figure, -1 where hidden or outside the image."""
    h, w = cv.h, cv.w
    kp = np.rint(rig.pts[:S.NUM_JOINTS, ::-1]).astype(np.int64)
    for j, (y, x) in enumerate(kp.tolist()):
        if not (0 <= y < h and 0 <= x < w):
            kp[j] = S.MISSING
        elif j in FACE_POINTS and not rig.face_visible.get(j, True):
            kp[j] = S.MISSING
        elif j in _VISIBLE_ON and cv.part_at(y, x) not in _VISIBLE_ON[j]:
            kp[j] = S.MISSING
    return kp


def _background_array(background: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A given uint8 H×W×3 background as float planes in [0, 1] (one clear error for a wrong shape)."""
    bg = np.asarray(background)
    if bg.shape != (size[0], size[1], 3):
        raise DataError(f"background must be a {size[0]}x{size[1]}x3 image, got an array of shape {bg.shape}")
    return bg.transpose(2, 0, 1).astype(F32) * F32(1.0 / 255.0)


def render_rig(ident: Identity, pose: PoseParams, size: tuple[int, int], scene: Scene | None = None,
               background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render ``ident`` in ``pose`` at ``size`` (H, W) → (uint8 H×W×3 image, (18, 2) keypoints)."""
    rig = project(ident, pose, size)
    if background is not None:  # a given background keeps its colours: undo the global gain/tint ahead
        bg = _background_array(background, size)
        bg /= planes(np.asarray(pose.tint, dtype=F32) * F32(pose.gain), 2)
    else:
        if scene is None:
            scene = sample_scene(np.random.default_rng([ident.index, STREAM_SCENE]), ident.kind)
        bg = render_background(scene, size, pose.pan, pose.horizon)
    shadow(bg, rig)
    cv = Canvas(bg, pose.light, pose.ambient)
    draw_person(cv, rig, ident, detail=size[0] >= 192)
    kp = _rig_keypoints(rig, cv)
    return finish(cv.img, pose.gain, pose.tint), kp


def render_person(person: np.random.Generator | int | Identity | None = None,
                  pose: np.ndarray | PoseParams | np.random.Generator | int | None = None,
                  size: str | tuple[int, int] = "market", *, view: str | None = None, family: str | None = None,
                  scene: Scene | None = None, background: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic photo: ``(uint8 H×W×3 RGB image, (18, 2) int (y, x) keypoints, -1 missing)``.

    ``person``: an :class:`Identity`, or a Generator / int seed to sample one. ``pose``: a
    :class:`PoseParams`; a Generator / int seed to sample one (default: drawn from the person's generator,
    optionally of the given ``view`` and ``family``); or an (18, 2) (y, x) keypoint array in the pixels of
    ``size`` — the figure is then drawn through those joints (both hips and the neck or both shoulders are
    needed) and the returned keypoints are the given ones (joints outside the image become -1).
    ``size``: ``market`` (128×64), ``fashion`` (256×176) or (H, W). ``background``: a uint8 H×W×3 image to
    draw on instead of a random scene.
    """
    kind, hw = resolve_size(size)
    d = None
    if isinstance(person, Identity):
        ident = person
    else:
        d = draws(person)
        ident = sample_identity(d, kind)
    if isinstance(pose, np.ndarray) or (isinstance(pose, (list, tuple)) and len(pose) == S.NUM_JOINTS):
        if scene is None and background is None and d is not None:
            scene = sample_scene(d, kind)
        return _render_from_keypoints(ident, np.asarray(pose), hw, scene, background)
    if isinstance(pose, PoseParams):
        params = pose
    else:
        pd = draws(pose) if pose is not None else (d if d is not None else draws(None))
        params = sample_pose(pd, kind, view=view, family=family)
    if scene is None and background is None and d is not None:
        scene = sample_scene(d, kind)
    return render_rig(ident, params, hw, scene=scene, background=background)


def _render_from_keypoints(ident: Identity, keypoints: np.ndarray, size: tuple[int, int],
                           scene: Scene | None, background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Draw the person through given 2-D joints (a ground-truth photo for any pose, e.g. an estimated one).

    Neutral lighting: the pose gives no light, gain or tint. Returns the given keypoints (cropped to the image).
    """
    kp = K.validate_keypoints(keypoints, where="render_person keypoints")
    kp = K.crop_keypoints(kp, 0, 0, size)
    rig = rig_from_keypoints(ident, kp)
    if background is not None:
        bg = _background_array(background, size)
    else:
        scene = scene or sample_scene(np.random.default_rng([ident.index, STREAM_SCENE]), ident.kind)
        bg = render_background(scene, size)
    cv = Canvas(bg, (-0.35, -0.45, 0.82), 0.5)
    draw_person(cv, rig, ident, detail=size[0] >= 192)
    return finish(cv.img, 1.0, (1.0, 1.0, 1.0)), kp
