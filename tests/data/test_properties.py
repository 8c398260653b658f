"""Property-based tests (hypothesis) for the keypoint formats, geometry, heatmaps and pair building."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posetransfer.data import keypoints as K
from posetransfer.kinds import FASHION
from posetransfer.data.layout import build_pairs, identity_of
from posetransfer.data.prepare import fit_to_frame
from posetransfer.errors import DataError

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

sizes = st.tuples(st.integers(1, 300), st.integers(1, 300))


@st.composite
def keypoints_in(draw, size=None):
    """(size, keypoints): (18, 2) int keypoints inside an image of ``size``, some joints missing."""
    if size is None:
        size = draw(sizes)
    h, w = size
    ys = draw(st.lists(st.integers(0, h - 1), min_size=18, max_size=18))
    xs = draw(st.lists(st.integers(0, w - 1), min_size=18, max_size=18))
    missing = draw(st.lists(st.booleans(), min_size=18, max_size=18))
    kp = np.stack([ys, xs], axis=1).astype(np.int64)
    kp[np.array(missing)] = -1
    return size, kp


# Printable names without ':' and without surrounding whitespace or quotes (what check_image_name accepts).
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=':"'),
    min_size=1, max_size=30,
).map(str.strip).filter(lambda s: bool(s) and s.isprintable())


@SETTINGS
@given(st.dictionaries(names, keypoints_in(size=(256, 176)).map(lambda t: t[1]), min_size=1, max_size=8))
def test_annotation_csv_round_trip(annotations):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ann.csv"
        K.write_annotations(path, annotations)
        back = K.read_annotations(path, size=(256, 176))
    assert list(back) == list(annotations)
    for name, kp in annotations.items():
        np.testing.assert_array_equal(back[name], kp)


@SETTINGS
@given(st.lists(st.tuples(names, names), max_size=10))
def test_pairs_csv_round_trip(pairs):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.csv"
        K.write_pairs(path, pairs)
        assert K.read_pairs(path) == pairs


#: Pieces of almost-valid CSV lines, so that garbage often gets past the header and the field split.
FRAGMENTS = ["a.jpg", "b.jpg", ":", ",", "[", "]", "\n", "\r\n", "-1", "0", "17", "1e999", "NaN", "-7", "1.5",
             '"', " ", "from,to\n", "name:keypoints_y:keypoints_x\n", "[" + ", ".join(["3"] * 18) + "]", "\x00",
             "true", "null", "{}", "[[1]]", "9" * 30]
garbage = st.one_of(st.text(max_size=400),
                    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=60).map("".join))


@SETTINGS
@given(garbage, st.booleans())
def test_garbage_annotation_text_raises_only_data_error(text, with_header):
    if with_header:
        text = "name:keypoints_y:keypoints_x\n" + text
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "garbage.csv"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))   # lone surrogates → undecodable bytes
        try:
            K.read_annotations(path, size=(128, 64))
        except DataError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
        try:
            K.read_pairs(path, known_names=set())
        except DataError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)


@SETTINGS
@given(st.binary(max_size=300))
def test_garbage_bytes_raise_only_data_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bytes.csv"
        path.write_bytes(b"name:keypoints_y:keypoints_x\n" + data)
        for reader in (K.read_annotations, K.read_pairs):
            try:
                reader(path)
            except DataError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)


@SETTINGS
@given(st.lists(st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                          st.text(max_size=3), st.booleans(), st.none()), max_size=20),
       st.lists(st.integers(-3, 300), min_size=18, max_size=18))
def test_arbitrary_json_lists_parse_or_raise_data_error(ys, xs):
    import json

    try:
        y_text = json.dumps(ys)
    except ValueError:
        return
    try:
        kp = K.parse_keypoints(y_text, json.dumps(xs), where="row")
    except DataError as exc:
        assert str(exc).startswith("row")
    else:
        assert kp.shape == (18, 2) and kp.dtype == np.int64


@SETTINGS
@given(keypoints_in())
def test_heatmaps_at_any_size(sized):
    size, kp = sized
    maps = K.heatmaps(kp, size, sigma=6.0)
    assert maps.shape == (18, *size) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    np.testing.assert_array_equal(K.heatmap_argmax(maps), kp)
    onehot = K.heatmaps(kp, size, mode="onehot")
    assert (onehot.reshape(18, -1).sum(axis=1) == ~K.missing_mask(kp)).all()


@SETTINGS
@given(keypoints_in())
def test_flip_twice_is_identity_and_stays_inside(sized):
    (h, w), kp = sized
    flipped = K.flip_keypoints(kp, w)
    K.validate_keypoints(flipped, (h, w))
    assert K.missing_mask(flipped).sum() == K.missing_mask(kp).sum()
    np.testing.assert_array_equal(K.flip_keypoints(flipped, w), kp)


@SETTINGS
@given(keypoints_in(size=(256, 256)))
def test_fashion_crop_round_trip(sized):
    _, kp = sized
    cropped = K.fashion_256_to_176(kp)
    K.validate_keypoints(cropped, FASHION.size)
    inside = ~K.missing_mask(kp) & (kp[:, 1] >= 40) & (kp[:, 1] < 216)
    back = K.fashion_176_to_256(cropped)
    np.testing.assert_array_equal(back[inside], kp[inside])
    assert K.missing_mask(back[~inside]).all()


@SETTINGS
@given(keypoints_in(), st.integers(1, 4), st.integers(1, 4))
def test_rescale_up_and_back(sized, fy, fx):
    (h, w), kp = sized
    big = K.rescale_keypoints(kp, (h, w), (h * fy, w * fx))
    K.validate_keypoints(big, (h * fy, w * fx))
    np.testing.assert_array_equal(K.rescale_keypoints(big, (h * fy, w * fx), (h, w)), kp)


@SETTINGS
@given(st.integers(1, 120), st.integers(1, 120))
def test_fit_to_frame_always_gives_the_frame(h, w):
    image = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = fit_to_frame(image, (32, 22))
    assert out.shape == (32, 22, 3) and out.dtype == np.uint8


@SETTINGS
@given(st.dictionaries(
    st.tuples(st.integers(0, 5), st.integers(0, 999)).map(lambda t: f"{t[0]:04d}_c1s1_{t[1]:06d}_00.jpg"),
    st.booleans(), max_size=25))
def test_build_pairs_invariants(complete):
    full = np.stack([np.arange(18) + 1, np.arange(18) + 1], axis=1)
    ann = {}
    for name, ok in complete.items():
        kp = full.copy()
        if not ok:
            kp[K.JOINT_INDEX["r_hip"]] = -1
        ann[name] = kp
    pairs = build_pairs(ann, "market")
    assert len(set(pairs)) == len(pairs)
    for a, b in pairs:
        assert a != b and identity_of(a, "market") == identity_of(b, "market")
        assert complete[a] and complete[b] and not a.startswith("0000")
    counts: dict[str, int] = {}
    for name, ok in complete.items():
        if ok and not name.startswith("0000"):
            counts[identity_of(name, "market")] = counts.get(identity_of(name, "market"), 0) + 1
    assert len(pairs) == sum(n * (n - 1) for n in counts.values())
