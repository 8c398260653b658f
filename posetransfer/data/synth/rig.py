"""The body: pose parameters and their sampling (pose families, joint limits), the 3-D skeleton and its
projection into a 2-D rig in pixels, or a rig fitted to given 2-D keypoints.

Why: keypoints must be exactly where the limbs are drawn, so the drawing and the annotation both come
from one rig; and poses must vary a lot while staying plausible, hence pose families with joint limits
instead of independent random joint positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ... import skeleton as S
from ...errors import PoseError
from .. import keypoints as K
from .appearance import Identity
from .kinds import check_kind
from .sampling import Colour, Draws, draws, jitter
from .vecmath import Mat, Vec, add, dot, mm, mv, normalize, orthogonal, rotx, roty, rotz

VIEWS = ("front", "back", "side", "three_quarter")
VIEW_PROBS = (0.35, 0.2, 0.3, 0.15)
FAMILIES = ("stand", "walk", "run", "raise", "wave", "akimbo", "cross", "behind", "reach", "phone")
FAMILY_PROBS = (0.2, 0.3, 0.06, 0.09, 0.06, 0.08, 0.05, 0.05, 0.06, 0.05)
#: Per-image camera pan (fraction of the width) and horizon jitter (fraction of the height) limits.
MAX_PAN, MAX_HORIZON = 0.25, 0.03


@dataclass(frozen=True)
class PoseParams:
    """One pose of one person: view, joint angles (degrees), framing and lighting."""

    view: str
    family: str
    yaw: float                      # degrees; 0 faces the camera, 180 shows the back, +90 the right side
    lean: float = 0.0
    side_bend: float = 0.0
    twist: float = 0.0
    head_turn: float = 0.0
    head_tilt: float = 0.0
    # arms: (flexion forward, abduction sideways, elbow bend, bend reference x, y, z in the torso frame,
    # x pointing away from the body's midline)
    arm_r: tuple[float, float, float, float, float, float] = (0.0, 8.0, 10.0, 0.0, 0.25, 1.0)
    arm_l: tuple[float, float, float, float, float, float] = (0.0, 8.0, 10.0, 0.0, 0.25, 1.0)
    # legs: (flexion forward, abduction sideways, knee bend, toe-out)
    leg_r: tuple[float, float, float, float] = (0.0, 4.0, 3.0, 8.0)
    leg_l: tuple[float, float, float, float] = (0.0, 4.0, 3.0, 8.0)
    fill: float = 0.9               # person height / image height (before the width constraint)
    fill_w: float = 0.94            # maximum person width / image width
    ground: float = 0.96            # feet line as a fraction of the image height
    shift: float = 0.0              # horizontal offset, fraction of the width
    pan: float = 0.0                # background pan, fraction of the width
    horizon: float = 0.0            # background horizon jitter, fraction of the height
    light: tuple[float, float, float] = (-0.35, -0.45, 0.82)
    ambient: float = 0.5
    gain: float = 1.0
    tint: Colour = (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Pose sampling: pose families within joint limits
# --------------------------------------------------------------------------------------------------
def _arm(flex: float, abd: float, elbow: float, ref: Sequence[float] = (0.0, 0.25, 1.0)):
    """The arm tuple of :class:`PoseParams` (angles in degrees, elbow bend reference direction)."""
    return (float(flex), float(abd), float(elbow), float(ref[0]), float(ref[1]), float(ref[2]))


def _sample_arms(d: Draws, family: str):
    """(right arm, left arm) angles of a pose family; the arm not doing the gesture hangs naturally."""
    def hang():
        return _arm(d.normal(2, 8), d.uniform(4, 14), d.uniform(5, 25))

    def one_or_both(gesture: Callable[[], tuple], both: float):
        r, l = hang(), hang()
        u = d.random()
        if u < both:
            return gesture(), gesture()
        return (gesture(), l) if u < both + (1 - both) / 2 else (r, gesture())

    if family == "raise":
        def raised():
            if d.random() < 0.5:
                return _arm(d.normal(0, 10), d.uniform(115, 170), d.uniform(0, 30))
            return _arm(d.uniform(115, 170), d.uniform(0, 20), d.uniform(0, 30))
        return one_or_both(raised, 0.4)
    if family == "wave":
        return one_or_both(lambda: _arm(d.uniform(-5, 25), d.uniform(45, 90), d.uniform(70, 120), (0.2, 1.0, 0.25)), 0)
    if family == "akimbo":
        return one_or_both(lambda: _arm(d.uniform(-15, 0), d.uniform(35, 55), d.uniform(90, 118), (-1.0, -0.3, -0.2)),
                           0.5)
    if family == "cross":
        return (_arm(d.uniform(20, 40), d.uniform(10, 25), d.uniform(105, 130), (-1.0, 0.2, 0.6)),
                _arm(d.uniform(20, 40), d.uniform(10, 25), d.uniform(105, 130), (-1.0, 0.35, 0.7)))
    if family == "behind":
        return (_arm(d.uniform(-32, -15), d.uniform(5, 15), d.uniform(50, 90), (-1.0, 0.0, -0.8)),
                _arm(d.uniform(-32, -15), d.uniform(5, 15), d.uniform(50, 90), (-1.0, 0.0, -0.8)))
    if family == "reach":
        def reach():
            if d.random() < 0.5:
                return _arm(d.uniform(60, 100), d.uniform(0, 25), d.uniform(0, 20))
            return _arm(d.uniform(-10, 20), d.uniform(65, 95), d.uniform(0, 20))
        return one_or_both(reach, 0)
    if family == "phone":
        return one_or_both(lambda: _arm(d.uniform(10, 35), d.uniform(15, 35), d.uniform(122, 145), (0.0, 0.7, 0.7)), 0)
    return hang(), hang()


def _clampf(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def sample_pose(rng: np.random.Generator | int | Draws, kind: str = "market", view: str | None = None,
                family: str | None = None) -> PoseParams:
    """A random pose: ``view`` in front | back | side | three_quarter and ``family`` (see FAMILIES)."""
    d = draws(rng)
    kind = check_kind(kind)
    if view is None:
        view = d.choice(VIEWS, VIEW_PROBS)
    if view not in VIEWS:
        raise PoseError(f"unknown view {view!r} (choose from {', '.join(VIEWS)})")
    if family is None:
        family = d.choice(FAMILIES, FAMILY_PROBS)
    if family not in FAMILIES:
        raise PoseError(f"unknown pose family {family!r} (choose from {', '.join(FAMILIES)})")
    sign = 1.0 if d.random() < 0.5 else -1.0
    if view == "front":
        yaw = d.normal(0, 12)
    elif view == "back":
        yaw = 180 + d.normal(0, 12)
    elif view == "side":
        yaw = sign * (90 + d.normal(0, 10))
    else:
        yaw = sign * (d.uniform(30, 60) if d.random() < 0.65 else d.uniform(120, 150))

    arm_r, arm_l = _sample_arms(d, family)
    lean, twist = d.normal(0, 3), d.normal(0, 4)
    leg_r = [d.normal(0, 4), d.uniform(0, 8), d.uniform(0, 8), d.uniform(0, 15)]
    leg_l = [d.normal(0, 4), d.uniform(0, 8), d.uniform(0, 8), d.uniform(0, 15)]
    stance = d.choice(("straight", "contrapposto", "wide", "cross"), (0.45, 0.3, 0.15, 0.1))
    if stance == "contrapposto":
        bent = leg_r if d.random() < 0.5 else leg_l
        bent[0], bent[2] = d.uniform(5, 18), d.uniform(15, 32)
    elif stance == "wide":
        leg_r[1], leg_l[1] = d.uniform(10, 20), d.uniform(10, 20)
    elif stance == "cross":
        crossed = leg_r if d.random() < 0.5 else leg_l
        crossed[0], crossed[1], crossed[2] = d.uniform(0, 10), d.uniform(-12, -6), d.uniform(5, 15)
    if family in ("walk", "run"):
        run = family == "run"
        s = math.sin(d.uniform(0, 2 * math.pi))
        amp = d.uniform(30, 45) if run else d.uniform(14, 30)
        for leg, sg in ((leg_r, 1.0), (leg_l, -1.0)):
            f = sg * amp * s
            leg[0], leg[1] = f, d.uniform(0, 6)
            behind = min(1.0, max(0.0, -f / amp + 0.25))
            leg[2] = d.uniform(3, 10) + (d.uniform(50, 90) if run else d.uniform(25, 45)) * behind
            if run and f > 0:
                leg[2] = max(leg[2], d.uniform(30, 60))
        arm_amp = d.uniform(35, 50) if run else d.uniform(10, 30)
        if run or d.random() < 0.75:  # some walkers keep their gesture (phoning, waving while walking)
            elbow_lo, elbow_hi = (80, 100) if run else (10, 35)
            arm_r = _arm(-arm_amp * s, d.uniform(4, 12), d.uniform(elbow_lo, elbow_hi))
            arm_l = _arm(arm_amp * s, d.uniform(4, 12), d.uniform(elbow_lo, elbow_hi))
        twist = 0.25 * arm_amp * s
        lean = d.uniform(8, 15) if run else d.uniform(0, 5)

    def limit_arm(a):
        return (_clampf(a[0] + d.normal(0, 3), -50, 175), _clampf(a[1] + d.normal(0, 3), -15, 175),
                _clampf(a[2] + d.normal(0, 3), 0, 150), a[3], a[4], a[5])

    def limit_leg(g):
        return (_clampf(g[0], -35, 110), _clampf(g[1], -15, 45), _clampf(g[2], 0, 140), _clampf(g[3], -10, 30))

    lx, ly, lz = d.uniform(-0.8, 0.8), -d.uniform(0.2, 0.7), d.uniform(0.6, 1.0)
    ln = math.sqrt(lx * lx + ly * ly + lz * lz)
    fashion = kind == "fashion"
    return PoseParams(
        view=view, family=family, yaw=yaw, lean=_clampf(lean, -10, 25), side_bend=_clampf(d.normal(0, 3), -8, 8),
        twist=_clampf(twist, -20, 20), head_turn=_clampf(d.normal(0, 14), -40, 40),
        head_tilt=_clampf(d.normal(0, 6), -15, 15),
        arm_r=limit_arm(arm_r), arm_l=limit_arm(arm_l), leg_r=limit_leg(leg_r), leg_l=limit_leg(leg_l),
        fill=d.uniform(0.84, 0.92) if fashion else d.uniform(0.85, 0.94), fill_w=d.uniform(0.88, 0.96),
        ground=d.uniform(0.95, 0.985) if fashion else d.uniform(0.945, 0.985),
        shift=d.uniform(-0.05, 0.05) if fashion else d.uniform(-0.07, 0.07),
        pan=d.uniform(-MAX_PAN, MAX_PAN), horizon=d.uniform(-MAX_HORIZON, MAX_HORIZON),
        light=(lx / ln, ly / ln, lz / ln), ambient=d.uniform(0.42, 0.56), gain=d.uniform(0.88, 1.1),
        tint=jitter(d, (1.0, 1.0, 1.0), 0.025),
    )


# --------------------------------------------------------------------------------------------------
# Kinematics in plain Python floats (3-vectors as tuples): 3-D skeleton → projected 2-D rig
# --------------------------------------------------------------------------------------------------
_DOWN: Vec = (0.0, -1.0, 0.0)
# Body lengths in body heights (sole to top of the head = 1).
SPINE, UPPER_ARM, FOREARM, HAND, THIGH, SHIN, FOOT = 0.29, 0.165, 0.145, 0.085, 0.245, 0.245, 0.115

#: Points of a skeleton: the 18 joints first (COCO order), then the extra points the drawing needs.
_EXTRA = ("head", "r_hand", "l_hand", "r_heel", "r_toe", "l_heel", "l_toe", "hair_top", "hair_end", "bun",
          "pack", "hip_c", "waist", "mouth")
MOUTH: Vec = (0.0, -0.5, 0.87)
POINT_NAMES = S.JOINT_NAMES + _EXTRA
POINT_INDEX = {name: i for i, name in enumerate(POINT_NAMES)}
#: Face points on the unit head sphere (head frame: x = the person's left, y = up, z = forward) and the
#: minimum camera-facing component of their normal for them to count as visible.
FACE_POINTS: dict[int, tuple[tuple[float, float, float], float]] = {
    0: ((0.0, -0.22, 0.975), -0.1),     # nose (the tip still shows in profile)
    14: ((-0.36, 0.08, 0.93), 0.25),    # right eye
    15: ((0.36, 0.08, 0.93), 0.25),     # left eye
    16: ((-0.96, 0.0, -0.12), -0.45),   # right ear
    17: ((0.96, 0.0, -0.12), -0.45),    # left ear
}
#: Points whose drawing radius (body heights) extends the figure's bounding box used for framing.
_FRAME_MARGIN = {"r_hand": 0.022, "l_hand": 0.022, "r_shoulder": 0.035, "l_shoulder": 0.035, "neck": 0.035,
                 "r_hip": 0.045, "l_hip": 0.045, "r_heel": 0.03, "r_toe": 0.03, "l_heel": 0.03, "l_toe": 0.03,
                 "r_elbow": 0.03, "l_elbow": 0.03, "r_knee": 0.04, "l_knee": 0.04, "r_ankle": 0.03,
                 "l_ankle": 0.03, "r_wrist": 0.025, "l_wrist": 0.025}
_FRAME = tuple((POINT_INDEX[n], m) for n, m in _FRAME_MARGIN.items())


@dataclass
class Rig:
    """A projected skeleton in pixels: points (N, 2) (x, y), depth (N,) (towards the camera), plus sizes."""

    pts: np.ndarray
    xy: list                         # the same points as Python (x, y) tuples (fast access)
    depth: list                      # body heights, larger = nearer to the camera
    scale: float                     # pixels per body height
    yaw: float                       # radians
    cam_head: Mat                    # head frame → camera frame
    torso_w: tuple[float, float]     # projected half-widths (shoulders, hips) in body heights
    pack_w: float
    face_visible: dict[int, bool]

    def p(self, name: str) -> tuple[float, float]:
        return self.xy[POINT_INDEX[name]]

    def z(self, name: str) -> float:
        return self.depth[POINT_INDEX[name]]


def skeleton(ident: Identity, pose: PoseParams) -> tuple[list[Vec], Mat]:
    """3-D points in the person frame (x = the person's left, y = up, z = forward), hip centre at 0.

    Returns (points in ``POINT_NAMES`` order, head rotation).
    """
    rad, ix = math.radians, POINT_INDEX
    pts: list[Vec] = [(0.0, 0.0, 0.0)] * len(POINT_NAMES)
    rt = mm(mm(roty(rad(pose.twist)), rotx(rad(pose.lean))), rotz(rad(pose.side_bend)))
    rp = roty(rad(-0.5 * pose.twist))
    neck = mv(rt, (0.0, SPINE, 0.0))
    pts[ix["neck"]] = neck
    pts[ix["waist"]] = mv(rt, (0.0, 0.075, 0.0))
    fwd_t = mv(rt, (0.0, 0.0, 1.0))
    for sg, sd, params in ((-1.0, "r", pose.arm_r), (1.0, "l", pose.arm_l)):
        flex, abd, elbow, rx, ry, rz = params
        shoulder = add(neck, mv(rt, (sg * ident.shoulder, 0.0, 0.0)))
        d = mv(rt, mv(rotx(-rad(flex)), mv(rotz(sg * rad(abd)), _DOWN)))
        ref = mv(rt, normalize((sg * rx, ry, rz)))
        b = add(ref, d, -dot(ref, d))
        if dot(b, b) < 1e-6:
            b = add(fwd_t, d, -dot(fwd_t, d))
        b = normalize(b)
        e = rad(elbow)
        fa = add(add((0.0, 0.0, 0.0), d, math.cos(e)), b, math.sin(e))
        elbow_p = add(shoulder, d, UPPER_ARM)
        wrist = add(elbow_p, fa, FOREARM)
        pts[ix[sd + "_shoulder"]], pts[ix[sd + "_elbow"]] = shoulder, elbow_p
        pts[ix[sd + "_wrist"]], pts[ix[sd + "_hand"]] = wrist, add(wrist, fa, HAND)
    back = mv(rp, (0.0, 0.0, -1.0))
    for sg, sd, params in ((-1.0, "r", pose.leg_r), (1.0, "l", pose.leg_l)):
        flex, abd, knee, toe_out = params
        hip = mv(rp, (sg * ident.hip, 0.0, 0.0))
        d = mv(rp, mv(rotx(-rad(flex)), mv(rotz(sg * rad(abd)), _DOWN)))
        b = orthogonal(back, d)
        k = rad(knee)
        shin = add(add((0.0, 0.0, 0.0), d, math.cos(k)), b, math.sin(k))
        knee_p = add(hip, d, THIGH * ident.leg)
        ankle = add(knee_p, shin, SHIN * ident.leg)
        foot = orthogonal(mv(rp, mv(roty(sg * rad(toe_out)), (0.0, 0.0, 1.0))), shin)
        sole = add(ankle, shin, 0.03)
        pts[ix[sd + "_hip"]], pts[ix[sd + "_knee"]], pts[ix[sd + "_ankle"]] = hip, knee_p, ankle
        pts[ix[sd + "_heel"]] = add(sole, foot, -0.025)
        pts[ix[sd + "_toe"]] = add(sole, foot, FOOT)
    rh = mm(mm(rt, roty(rad(pose.head_turn))), rotx(rad(pose.head_tilt)))
    r = ident.head
    head = add(add(neck, mv(rt, (0.0, 0.048, 0.008))), mv(rh, (0.0, 1.02 * r, 0.0)))
    pts[ix["head"]] = head
    for j, (unit, _) in FACE_POINTS.items():
        pts[j] = add(head, mv(rh, (unit[0] * r, unit[1] * 1.12 * r, unit[2] * r)))
    pts[ix["mouth"]] = add(head, mv(rh, (MOUTH[0] * r, MOUTH[1] * 1.12 * r, MOUTH[2] * r)))
    pts[ix["hair_top"]] = add(head, mv(rh, (0.0, 0.05 * r, -0.55 * r)))
    # long hair hangs behind the back: its lower end lies just behind the torso's back surface
    pts[ix["hair_end"]] = add(neck, mv(rt, (0.0, 0.12 - ident.hair_length, -(ident.chest_depth + 0.015))))
    pts[ix["bun"]] = add(head, mv(rh, (0.0, 0.62 * r, -0.78 * r)))
    pts[ix["pack"]] = add(neck, mv(rt, (0.0, -0.13, -(ident.chest_depth + 0.04))))
    return pts, rh


def project(ident: Identity, pose: PoseParams, size: tuple[int, int]) -> Rig:
    """Rotate the skeleton by the view yaw, project it and fit the figure into the frame."""
    h, w = size
    ix = POINT_INDEX
    pts3, rh = skeleton(ident, pose)
    yaw = math.radians(pose.yaw)
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    xs = [p[0] * cy_ + p[2] * sy_ for p in pts3]
    ys = [-p[1] for p in pts3]
    depth = [p[2] * cy_ - p[0] * sy_ for p in pts3]
    # projected torso half-widths: an elliptic cross-section seen under the yaw (+ shoulder/hip twist)
    a_sh = yaw + math.radians(pose.twist)
    a_hp = yaw - math.radians(0.5 * pose.twist)
    w_sh = math.hypot((ident.shoulder + 0.022 * ident.limb) * math.cos(a_sh), ident.chest_depth * math.sin(a_sh))
    w_hp = math.hypot((ident.hip + 0.055 * ident.limb) * math.cos(a_hp), (ident.chest_depth + 0.005) * math.sin(a_hp))
    # bounding box of the drawn figure (points grown by their drawing radius), in body heights
    ih, hr = ix["head"], ident.head
    neck_x, hip_x = xs[ix["neck"]], xs[ix["hip_c"]]
    lo_x = min(xs[ih] - hr, neck_x - w_sh, hip_x - w_hp)
    hi_x = max(xs[ih] + hr, neck_x + w_sh, hip_x + w_hp)
    lo_y, hi_y = ys[ih] - 1.15 * hr, -1e9
    for i, m in _FRAME:
        x, y = xs[i], ys[i]
        lo_x, hi_x = min(lo_x, x - m), max(hi_x, x + m)
        lo_y, hi_y = min(lo_y, y - m), max(hi_y, y + m)
    scale = min(pose.fill * h / (hi_y - lo_y), pose.fill_w * w / (hi_x - lo_x))
    ox = w / 2.0 - 0.5 + pose.shift * w - scale * (lo_x + hi_x) / 2.0
    oy = pose.ground * h - scale * hi_y
    xy = [(x * scale + ox, y * scale + oy) for x, y in zip(xs, ys)]
    ry = roty(yaw)
    cam_head = mm(ry, rh)
    visible = {j: dot(cam_head[2], normalize(unit)) > thr for j, (unit, thr) in FACE_POINTS.items()}
    return Rig(pts=np.array(xy), xy=xy, depth=depth, scale=scale,
               yaw=(yaw + math.pi) % (2 * math.pi) - math.pi,
               cam_head=cam_head, torso_w=(w_sh, w_hp),
               pack_w=math.hypot(0.08 * math.cos(a_sh), 0.05 * math.sin(a_sh)), face_visible=visible)


class MissingPoint(Exception):
    """Raised by a rig that lacks a point: that part is not drawn."""


class KeypointRig(Rig):
    """A rig built from given keypoints: parts with an unknown (NaN) end point are not drawn."""

    def p(self, name: str) -> tuple[float, float]:
        v = self.xy[POINT_INDEX[name]]
        if v[0] != v[0]:  # NaN
            raise MissingPoint
        return v


# --------------------------------------------------------------------------------------------------
# A rig through given 2-D keypoints (drawing a person in any pose, e.g. an estimated one)
# --------------------------------------------------------------------------------------------------
def rig_from_keypoints(ident: Identity, kp: np.ndarray) -> KeypointRig:
    """The rig of ``ident`` through (18, 2) (y, x) pixel keypoints (-1 missing, already inside the image).

    The view is inferred from the shoulder/hip spread and order and from the visible face points; points
    whose joints are missing stay NaN, so the parts they end are not drawn.
    """
    miss = K.missing_mask(kp).tolist()
    ix = S.JOINT_INDEX
    if miss[ix["r_hip"]] or miss[ix["l_hip"]] or (miss[ix["neck"]] and (miss[ix["r_shoulder"]] or
                                                                         miss[ix["l_shoulder"]])):
        raise PoseError("render_person: the keypoints need both hips and the neck or both shoulders")
    pts = {name: (float(kp[j, 1]), float(kp[j, 0])) for j, name in enumerate(S.JOINT_NAMES) if not miss[j]}
    hip_c = ((pts["r_hip"][0] + pts["l_hip"][0]) / 2, (pts["r_hip"][1] + pts["l_hip"][1]) / 2)
    if "neck" not in pts:
        pts["neck"] = ((pts["r_shoulder"][0] + pts["l_shoulder"][0]) / 2,
                       (pts["r_shoulder"][1] + pts["l_shoulder"][1]) / 2)
    neck = pts["neck"]
    spine = math.hypot(neck[0] - hip_c[0], neck[1] - hip_c[1]) or 1.0
    scale = spine / SPINE
    up = ((neck[0] - hip_c[0]) / spine, (neck[1] - hip_c[1]) / spine)
    side = (-up[1], up[0])  # the image right when upright
    yaw = _view_yaw(ident, pts, side, scale)
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    out: dict[str, tuple[float, float]] = dict(pts)
    out["neck"], out["hip_c"] = neck, hip_c
    _limb_ends(ident, out, side, scale, yaw)
    _drawing_points(ident, out, up, side, scale, yaw)
    nan = (math.nan, math.nan)
    xy = [out.get(name, nan) for name in POINT_NAMES]
    return KeypointRig(pts=np.asarray(xy), xy=xy, depth=_keypoint_depths(ident, yaw), scale=scale, yaw=yaw,
                       cam_head=roty(yaw),
                       torso_w=(math.hypot((ident.shoulder + 0.022 * ident.limb) * cy_, ident.chest_depth * sy_),
                                math.hypot((ident.hip + 0.055 * ident.limb) * cy_, (ident.chest_depth + 0.005) * sy_)),
                       pack_w=math.hypot(0.08 * cy_, 0.05 * sy_), face_visible={})


def _view_yaw(ident: Identity, pts: dict[str, tuple[float, float]], side: tuple[float, float],
              scale: float) -> float:
    """The yaw (radians) that the shoulder (else hip) spread and the face points imply.

    The person's right on the image left = facing us; no face points = seen from the back; the nose points
    the way the person faces (yaw > 0: towards the image right).
    """
    neck = pts["neck"]
    for a, b, half in (("r_shoulder", "l_shoulder", ident.shoulder), ("r_hip", "l_hip", ident.hip)):
        if a in pts and b in pts:
            spread = ((pts[b][0] - pts[a][0]) * side[0] + (pts[b][1] - pts[a][1]) * side[1]) / (2 * half * scale)
            c = max(-1.0, min(1.0, spread))
            yaw = math.acos(abs(c))
            face = any(n in pts for n in ("nose", "r_eye", "l_eye"))
            if c < 0 or not face:
                yaw = math.pi - yaw
            if "nose" in pts:
                toward = (pts["nose"][0] - neck[0]) * side[0] + (pts["nose"][1] - neck[1]) * side[1]
                if toward < 0:
                    yaw = -yaw
            return yaw
    return 0.0


def _limb_ends(ident: Identity, out: dict[str, tuple[float, float]], side: tuple[float, float], scale: float,
               yaw: float) -> None:
    """Add the shoulders the keypoints lack, the hands and the feet to ``out``; drop a wrist without an elbow
    and an ankle without a knee (their limb part cannot be drawn)."""
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    neck = out["neck"]
    for sd, sg in (("r", -1.0), ("l", 1.0)):
        if sd + "_shoulder" not in out:
            k = sg * ident.shoulder * scale * cy_
            out[sd + "_shoulder"] = (neck[0] + side[0] * k, neck[1] + side[1] * k)
        if sd + "_wrist" in out and sd + "_elbow" in out:
            (ex, ey), (wx, wy) = out[sd + "_elbow"], out[sd + "_wrist"]
            out[sd + "_hand"] = (wx + (wx - ex) * HAND / FOREARM, wy + (wy - ey) * HAND / FOREARM)
        else:
            out.pop(sd + "_wrist", None)
        if sd + "_ankle" in out and sd + "_knee" in out:
            ax, ay = out[sd + "_ankle"]
            fx = -sy_ * FOOT * scale  # the toes point the way the person faces
            out[sd + "_heel"] = (ax - 0.2 * fx, ay + 0.03 * scale)
            out[sd + "_toe"] = (ax + fx, ay + 0.045 * scale)
        else:
            out.pop(sd + "_ankle", None)


def _drawing_points(ident: Identity, out: dict[str, tuple[float, float]], up: tuple[float, float],
                    side: tuple[float, float], scale: float, yaw: float) -> None:
    """Add the head, waist, hair and backpack points to ``out`` (from the neck along the body's up axis)."""
    sy_ = math.sin(yaw)
    neck, hip_c = out["neck"], out["hip_c"]
    lift = (0.048 + 1.02 * ident.head) * scale
    head = (neck[0] + up[0] * lift, neck[1] + up[1] * lift)
    out["head"] = head
    hs = ident.head * scale
    out["waist"] = (hip_c[0] + up[0] * 0.075 * scale, hip_c[1] + up[1] * 0.075 * scale)
    out["hair_top"] = (head[0] + up[0] * 0.05 * hs, head[1] + up[1] * 0.05 * hs)
    # points behind the body (person-frame z < 0) move to the image left when yaw > 0
    hl = (0.12 - ident.hair_length) * scale
    back = -(ident.chest_depth + 0.015) * sy_ * scale
    out["hair_end"] = (neck[0] + up[0] * hl + side[0] * back, neck[1] + up[1] * hl + side[1] * back)
    bun = -0.78 * hs * sy_
    out["bun"] = (head[0] + up[0] * 0.62 * hs + side[0] * bun, head[1] + up[1] * 0.62 * hs + side[1] * bun)
    pk = ident.chest_depth + 0.04
    out["pack"] = (neck[0] - up[0] * 0.13 * scale - side[0] * pk * sy_ * scale,
                   neck[1] - up[1] * 0.13 * scale - side[1] * pk * sy_ * scale)


def _keypoint_depths(ident: Identity, yaw: float) -> list[float]:
    """Depths for the painter's order: the near side's limbs in front, hair, bun and backpack behind."""
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    ix = POINT_INDEX
    depth = []
    for name in POINT_NAMES:
        lateral = -1.0 if name.startswith("r_") else (1.0 if name.startswith("l_") else 0.0)
        depth.append(-lateral * 0.1 * sy_)
    depth[ix["hair_end"]] = -(ident.chest_depth + 0.015) * cy_ + 0.5 * (depth[ix["neck"]] + depth[ix["hip_c"]])
    depth[ix["bun"]] = -0.05 * cy_
    depth[ix["pack"]] = -(ident.chest_depth + 0.04) * cy_
    depth[ix["head"]] = 0.01 * cy_
    return depth
