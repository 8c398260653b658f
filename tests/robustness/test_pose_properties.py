"""Property-based tests (hypothesis) for PCKh counting and the OpenPose BODY_25 / COCO-18 keypoint files.

tests/data/test_properties.py already covers the CSV parsers, the geometric transforms and the heatmaps;
this file adds what the issue lists beyond those: PCKh counting (posetransfer.metrics.pckh) and the
BODY_25/COCO-18 conversions of posetransfer.pose.openpose, plus hostile keypoint JSON files.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from posetransfer.data import keypoints as K
from posetransfer.errors import DataError, PoseError
from posetransfer.metrics.pckh import PCKhAccumulator, count_correct, head_size, pckh
from posetransfer.pose.openpose import BODY25_TO_COCO18, read_keypoints_json, write_keypoints_json

SETTINGS = settings(max_examples=80, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
H, W = 256, 176


@st.composite
def keypoint_sets(draw, size=(H, W), min_present=0):
    """(18, 2) int64 (y, x) keypoints inside ``size``, some missing."""
    h, w = size
    ys = draw(st.lists(st.integers(0, h - 1), min_size=18, max_size=18))
    xs = draw(st.lists(st.integers(0, w - 1), min_size=18, max_size=18))
    missing = draw(st.lists(st.booleans(), min_size=18, max_size=18))
    kp = np.stack([ys, xs], axis=1).astype(np.int64)
    kp[np.array(missing)] = -1
    assume(int((~K.missing_mask(kp)).sum()) >= min_present)
    return kp


def near(target: np.ndarray, draw, spread: int = 20) -> np.ndarray:
    """A prediction scattered around ``target`` (some joints missing, all inside the image)."""
    noise = np.array(draw(st.lists(st.integers(-spread, spread), min_size=36, max_size=36))).reshape(18, 2)
    pred = np.clip(target + noise, 0, [H - 1, W - 1])
    drop = np.array(draw(st.lists(st.booleans(), min_size=18, max_size=18)))
    pred[K.missing_mask(target) | drop] = -1
    return pred.astype(np.int64)


@st.composite
def pairs(draw):
    target = draw(keypoint_sets())
    return near(target, draw), target


# ---------------------------------------------------------------------------------------------------------------
# PCKh counting
# ---------------------------------------------------------------------------------------------------------------
@SETTINGS
@given(pairs())
def test_counts_are_bounded_and_the_denominator_ignores_the_prediction(pair):
    pred, target = pair
    result = count_correct(pred, target)
    heads = int((~K.missing_mask(target)[list(K.HEAD_JOINTS)]).sum())
    if heads < 2:
        assert result is None and head_size(target) is None
        return
    correct, counted = result
    assert counted == int((~K.missing_mask(target)).sum())
    assert 0 <= correct <= counted
    assert count_correct(np.full_like(target, -1), target) == (0, counted)      # no prediction: all wrong
    assert count_correct(target, target)[1] == counted


@SETTINGS
@given(keypoint_sets())
def test_perfect_prediction_is_all_correct_iff_the_head_box_has_area(target):
    result = count_correct(target, target)
    size = head_size(target)
    if size is None:
        assert result is None
        return
    w, h = size
    correct, counted = result
    # strict "<" of the official code: a zero-width or zero-height head box makes every joint wrong
    assert correct == (counted if w > 0 and h > 0 else 0)


@SETTINGS
@given(pairs(), st.integers(0, 300), st.integers(0, 300), st.integers(1, 5))
def test_invariant_to_translation_and_integer_scaling(pair, dy, dx, k):
    pred, target = pair

    def move(kp):
        out = kp.copy()
        present = ~K.missing_mask(kp)
        out[present] = kp[present] * k + [dy, dx]
        return out

    assert count_correct(move(pred), move(target)) == count_correct(pred, target)


@SETTINGS
@given(pairs())
def test_invariant_to_a_horizontal_flip_of_both(pair):
    pred, target = pair
    assert count_correct(K.flip_keypoints(pred, W), K.flip_keypoints(target, W)) == count_correct(pred, target)


@SETTINGS
@given(pairs(), st.floats(0.0, 2.0), st.floats(0.0, 2.0))
def test_monotone_in_alpha(pair, a, b):
    pred, target = pair
    lo, hi = sorted((a, b))
    r_lo, r_hi = count_correct(pred, target, lo), count_correct(pred, target, hi)
    if r_lo is not None:
        assert r_lo[0] <= r_hi[0] and r_lo[1] == r_hi[1]


@SETTINGS
@given(pairs(), st.data())
def test_head_box_comes_from_the_target_only(pair, data):
    pred, target = pair
    other = pred.copy()
    j = data.draw(st.sampled_from(K.HEAD_JOINTS))
    other[j] = -1
    # removing a predicted joint can only remove correct joints, never change the denominator
    a, b = count_correct(pred, target), count_correct(other, target)
    if a is not None:
        assert b[1] == a[1] and a[0] - 1 <= b[0] <= a[0]


@SETTINGS
@given(st.lists(pairs(), max_size=8), st.randoms(use_true_random=False))
def test_accumulator_is_a_ratio_of_sums_in_any_order(items, rnd):
    acc = PCKhAccumulator()
    for pred, target in items:
        acc.add(pred, target)
    per_image = [count_correct(p, t) for p, t in items]
    counted = [r for r in per_image if r is not None]
    assert acc.skipped == len(items) - len(counted) and acc.images == len(counted)
    assert (acc.correct, acc.total) == (sum(r[0] for r in counted), sum(r[1] for r in counted))
    assert acc.value == (acc.correct / acc.total if acc.total else None)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert pckh([p for p, _ in shuffled], [t for _, t in shuffled]) == acc.value
    # "no person found" counts every target joint as wrong, like an all-missing prediction
    none_acc, missing_acc = PCKhAccumulator(), PCKhAccumulator()
    for _, target in items:
        none_acc.add(None, target)
        missing_acc.add(np.full_like(target, -1), target)
    assert (none_acc.correct, none_acc.total) == (0, missing_acc.total)
    assert none_acc.no_person == none_acc.images


# ---------------------------------------------------------------------------------------------------------------
# OpenPose BODY_25 / COCO-18 files
# ---------------------------------------------------------------------------------------------------------------
def _openpose_values(kp: np.ndarray, model: str, rng: np.random.Generator, conf: np.ndarray) -> list[float]:
    """OpenPose's flat [x, y, c, ...] for (y, x) keypoints; extra BODY_25 points (MidHip, feet) are random."""
    n = 25 if model == "BODY_25" else 18
    arr = np.zeros((n, 3))
    if model == "BODY_25":
        arr[:, 0] = rng.uniform(0, W, n)
        arr[:, 1] = rng.uniform(0, H, n)
        arr[:, 2] = rng.uniform(0, 1, n)          # MidHip and the feet may even be confident: they are dropped
    order = BODY25_TO_COCO18 if model == "BODY_25" else range(18)
    for joint, index in enumerate(order):
        if K.missing_mask(kp)[joint]:
            arr[index] = 0.0                       # OpenPose writes 0, 0, 0 for a joint it did not find
        else:
            arr[index] = (kp[joint, 1], kp[joint, 0], conf[joint])
    return arr.reshape(-1).tolist()


def _write(doc) -> Path:
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    with handle:
        json.dump(doc, handle)
    return Path(handle.name)


@SETTINGS
@given(keypoint_sets(min_present=1), st.sampled_from(["BODY_25", "COCO"]), st.integers(0, 2**32 - 1),
       st.sampled_from(["pose_keypoints_2d", "pose_keypoints"]))
def test_openpose_file_maps_to_the_same_coco18_keypoints(kp, model, seed, key):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.2, 1.0, 18)
    path = _write({"version": 1.3, "people": [{key: _openpose_values(kp, model, rng, conf)}]})
    try:
        np.testing.assert_array_equal(read_keypoints_json(path), kp)
    finally:
        path.unlink()


@SETTINGS
@given(keypoint_sets(min_present=1), st.integers(0, 2**32 - 1), st.floats(0.05, 0.9))
def test_low_confidence_joints_become_missing(kp, seed, threshold):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.0, 1.0, 18)
    path = _write({"people": [{"pose_keypoints_2d": _openpose_values(kp, "BODY_25", rng, conf)}]})
    try:
        try:
            got = read_keypoints_json(path, confidence=threshold)
        except PoseError:
            assert all(conf[j] < threshold or K.missing_mask(kp)[j] for j in range(18))
            return
    finally:
        path.unlink()
    expected = kp.copy()
    expected[conf < threshold] = -1
    np.testing.assert_array_equal(got, expected)


@SETTINGS
@given(st.lists(keypoint_sets(min_present=1), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_the_most_confident_person_is_chosen_whatever_the_order(people, seed):
    rng = np.random.default_rng(seed)
    confs = [np.full(18, 0.3 + 0.1 * i) for i in range(len(people))]   # distinct summed confidences
    values = [_openpose_values(kp, "COCO", rng, c) for kp, c in zip(people, confs)]
    scores = [float(c[~K.missing_mask(kp)].sum()) for kp, c in zip(people, confs)]
    # clearly distinct: 12 joints at 0.3 and 9 at 0.4 both sum to 3.6 (up to rounding), a tie either way
    assume(all(abs(a - b) > 1e-6 for i, a in enumerate(scores) for b in scores[i + 1:]))
    best = people[int(np.argmax(scores))]
    order = rng.permutation(len(people))
    path = _write({"people": [{"pose_keypoints_2d": values[i]} for i in order]})
    try:
        np.testing.assert_array_equal(read_keypoints_json(path), best)
    finally:
        path.unlink()


@SETTINGS
@given(keypoint_sets(), st.tuples(st.integers(1, 400), st.integers(1, 400)))
def test_own_format_round_trip_and_size_drops_outside_joints(kp, size):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kp.json"
        write_keypoints_json(path, kp, (H, W))
        np.testing.assert_array_equal(read_keypoints_json(path), kp)
        got = read_keypoints_json(path, size=size)
    outside = (kp[:, 0] >= size[0]) | (kp[:, 1] >= size[1])
    expected = kp.copy()
    expected[outside] = -1
    np.testing.assert_array_equal(got, expected)


# hostile files: anything JSON (and near-miss structures) must give a one-line DataError/PoseError naming the file
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=40,
)
numbers = st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(-1e6, 1e6))
triples = st.tuples(numbers, numbers, st.floats(0.0, 1.0)).map(list)
near_misses = st.one_of(
    st.fixed_dictionaries({"people": st.lists(st.fixed_dictionaries(
        {"pose_keypoints_2d": st.one_of(st.lists(triples, min_size=25, max_size=25).map(lambda t: sum(t, [])),
                                        st.lists(triples, min_size=18, max_size=18).map(lambda t: sum(t, [])),
                                        st.lists(numbers, min_size=54, max_size=54), json_values)}),
        min_size=1, max_size=3)}),
    st.fixed_dictionaries({"keypoints": st.one_of(keypoint_sets().map(lambda kp: kp.tolist()),
                                                  st.lists(st.lists(numbers, min_size=2, max_size=2),
                                                           min_size=18, max_size=18), json_values),
                           "size": st.one_of(json_values, st.lists(json_values, min_size=2, max_size=2))}),
    json_values,
)
VALID = [[10, 10]] * 18


@SETTINGS
@given(near_misses)
@example({"keypoints": VALID, "size": ["a", "b"]})                 # size not numbers: ValueError escapes
@example({"keypoints": VALID, "size": [None, 64]})                 # TypeError escapes
@example({"keypoints": VALID, "size": [1e308 * 10, 64]})           # inf: OverflowError escapes
@example({"people": [{"pose_keypoints_2d": [1e300, 1e300, 1.0] * 25}]})   # beyond int64: OverflowError escapes
def test_hostile_keypoint_json_gives_a_one_line_error_naming_the_file(doc):
    try:
        path = _write(doc)
    except (ValueError, OverflowError):
        return
    try:
        kp = read_keypoints_json(path)
    except (DataError, PoseError) as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        kp = np.asarray(kp)
        assert kp.shape == (18, 2) and kp.dtype == np.int64
        assert (kp[K.missing_mask(kp)] == -1).all() and (kp[~K.missing_mask(kp)] >= 0).all()
    finally:
        path.unlink()
