"""COCO-18 keypoints: CSV formats, heatmaps, geometry, masks and drawing (posetransfer.data.keypoints)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from posetransfer.data import keypoints as K
from posetransfer import viz
from posetransfer.skeleton import LIMB_COLORS
from posetransfer.kinds import MARKET
from posetransfer.errors import DataError


def skeleton(h: int = 128, w: int = 64) -> np.ndarray:
    """A hand-made standing person, all 18 joints, in (y, x) pixels of an h×w image (proportions of 128×64)."""
    rel = {
        "nose": (0.12, 0.50), "neck": (0.22, 0.50),
        "r_shoulder": (0.23, 0.30), "r_elbow": (0.38, 0.25), "r_wrist": (0.52, 0.22),
        "l_shoulder": (0.23, 0.70), "l_elbow": (0.38, 0.75), "l_wrist": (0.52, 0.78),
        "r_hip": (0.52, 0.38), "r_knee": (0.70, 0.37), "r_ankle": (0.88, 0.36),
        "l_hip": (0.52, 0.62), "l_knee": (0.70, 0.63), "l_ankle": (0.88, 0.64),
        "r_eye": (0.10, 0.45), "l_eye": (0.10, 0.55), "r_ear": (0.11, 0.40), "l_ear": (0.11, 0.60),
    }
    kp = np.array([rel[n] for n in K.JOINT_NAMES]) * np.array([h, w])
    return np.rint(kp).astype(np.int64)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# CSV round trips and the PATN text format
# ------------------------------------------------------------------------------------------------
def test_annotation_csv_round_trip_is_identical(tmp_path):
    kp = skeleton()
    kp2 = kp.copy()
    kp2[[3, 4, 16]] = -1
    ann = {"0002_c1s1_000451_03.jpg": kp, "0002_c2s1_000301_01.jpg": kp2}
    path = tmp_path / "market-annotation-train.csv"
    K.write_annotations(path, ann)
    back = K.read_annotations(path, size=MARKET.size)
    assert list(back) == list(ann)
    for name in ann:
        np.testing.assert_array_equal(back[name], ann[name])
    # writing what was read gives the same bytes
    again = tmp_path / "again.csv"
    K.write_annotations(again, back)
    assert again.read_bytes() == path.read_bytes()


def test_reads_the_official_patn_row_format(tmp_path):
    ys = [24, 22, 23, 40, 55, 22, 40, 57, 64, 88, 112, -1, 87, 111, 20, 20, 21, 21]
    xs = [31, 31, 20, 17, 15, 43, 46, 47, 24, 24, 24, -1, 39, 40, 29, 34, 26, 37]
    path = write(tmp_path, "a.csv", f"name:keypoints_y:keypoints_x\n0002_c1s1_000451_03.jpg: {ys}: {xs}\n")
    kp = K.read_annotations(path)["0002_c1s1_000451_03.jpg"]
    assert kp.shape == (18, 2) and kp.dtype == np.int64
    assert tuple(kp[0]) == (24, 31)            # y first, then x
    assert tuple(kp[11]) == (-1, -1)           # missing
    assert K.missing_mask(kp).sum() == 1


def test_pairs_csv_round_trip(tmp_path):
    pairs = [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg"), ("with,comma.jpg", "a.jpg")]
    path = tmp_path / "pairs.csv"
    K.write_pairs(path, pairs)
    assert path.read_text().splitlines()[0] == "from,to"
    assert K.read_pairs(path, known_names={"a.jpg", "b.jpg", "with,comma.jpg"}) == pairs


@pytest.mark.parametrize(
    "row, expected",
    [
        ("a.jpg: [1, 2]: [1, 2]", "keypoints_y has 2 values, 18 expected"),
        ("a.jpg: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,x]: [0]", "keypoints_y is not a list of numbers"),
        ("a.jpg: " + str(list(range(18))) + ": " + str(["a"] * 18), "keypoints_x is not a list of numbers"),
        ("a.jpg: " + str([True] * 18) + ": " + str(list(range(18))), "keypoints_y is not a list of numbers"),
        ("a.jpg: " + str(list(range(18))), "expected 3 ':'-separated fields, got 2"),
        ("a.jpg: " + str([-5] + [1] * 17) + ": " + str([1] * 18), "negative coordinate -5"),
        ("a.jpg: " + str([1e400] * 18).replace("inf", "1e400") + ": " + str([1] * 18), "non-finite"),
        (": " + str([1] * 18) + ": " + str([1] * 18), "empty image name"),
    ],
)
def test_malformed_annotation_rows_name_file_and_line(tmp_path, row, expected):
    path = write(tmp_path, "bad-annotation.csv", "name:keypoints_y:keypoints_x\n" + row + "\n")
    with pytest.raises(DataError) as err:
        K.read_annotations(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2")
    assert expected in message
    assert "\n" not in message


def test_keypoints_outside_the_image_are_an_error_naming_the_row(tmp_path):
    ys = [10] * 18
    xs = [10] * 17 + [64]                      # x == W is outside a 128x64 image
    path = write(tmp_path, "ann.csv", f"name:keypoints_y:keypoints_x\nok.jpg: {[5]*18}: {[5]*18}\nb.jpg: {ys}: {xs}\n")
    with pytest.raises(DataError, match=r"ann\.csv:3 \(b\.jpg\): joint 17 \(l_ear\) at \(y=10, x=64\) lies outside"):
        K.read_annotations(path, size=(128, 64))
    # the lenient mode (for third-party files written without clipping) marks them missing instead
    kp = K.read_annotations(path, size=(128, 64), outside="missing")["b.jpg"]
    assert tuple(kp[17]) == (-1, -1) and tuple(kp[16]) == (10, 10)


def test_bad_headers_duplicates_and_undecodable_files(tmp_path):
    path = write(tmp_path, "h.csv", "name,keypoints_y,keypoints_x\n")
    with pytest.raises(DataError, match=r"h\.csv:1: header"):
        K.read_annotations(path)
    row = f"a.jpg: {[1]*18}: {[1]*18}"
    path = write(tmp_path, "d.csv", f"name:keypoints_y:keypoints_x\n{row}\n{row}\n")
    with pytest.raises(DataError, match=r"d\.csv:3: duplicate image name 'a\.jpg'"):
        K.read_annotations(path)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    with pytest.raises(DataError, match=r"bin\.csv: annotation file is not UTF-8"):
        K.read_annotations(binary)
    with pytest.raises(DataError, match=r"bin\.csv: pairs file is not UTF-8"):
        K.read_pairs(binary)
    with pytest.raises(DataError, match=r"nothere\.csv: annotation file not found"):
        K.read_annotations(tmp_path / "nothere.csv")
    empty = write(tmp_path, "empty.csv", "")
    with pytest.raises(DataError, match=r"empty\.csv: annotation file is empty"):
        K.read_annotations(empty)
    with pytest.raises(DataError, match=r"empty\.csv: pairs file is empty"):
        K.read_pairs(empty)


def test_pairs_csv_errors_name_the_line(tmp_path):
    path = write(tmp_path, "p.csv", "from,to\na.jpg,b.jpg\na.jpg,ghost.jpg\n")
    with pytest.raises(DataError, match=r"p\.csv:3: image 'ghost\.jpg' is not in the annotation file"):
        K.read_pairs(path, known_names={"a.jpg", "b.jpg"})
    path = write(tmp_path, "q.csv", "from,to\na.jpg,b.jpg,c.jpg\n")
    with pytest.raises(DataError, match=r"q\.csv:2: expected 2 comma-separated names, got 3"):
        K.read_pairs(path)
    path = write(tmp_path, "r.csv", "src,dst\na.jpg,b.jpg\n")
    with pytest.raises(DataError, match=r"r\.csv:1: header must be 'from,to'"):
        K.read_pairs(path)


def test_writers_refuse_names_that_would_not_read_back(tmp_path):
    for name in ("a:b.jpg", "line\nbreak.jpg", " padded.jpg", "", '"quoted.jpg"'):
        with pytest.raises(DataError):
            K.write_annotations(tmp_path / "x.csv", {name: skeleton()})
    with pytest.raises(DataError):
        K.write_pairs(tmp_path / "y.csv", [("a.jpg", "b\r.jpg")])
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


# ------------------------------------------------------------------------------------------------
# Heatmaps
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(128, 64), (256, 176), (37, 23), (1, 1), (5, 200)])
def test_heatmap_argmax_recovers_keypoints(size):
    h, w = size
    rng = np.random.default_rng(h * 1000 + w)
    kp = np.stack([rng.integers(0, h, 18), rng.integers(0, w, 18)], axis=1)
    kp[[1, 7]] = -1
    maps = K.heatmaps(kp, size)
    assert maps.shape == (18, h, w) and maps.dtype == np.float32
    back = K.heatmap_argmax(maps)
    np.testing.assert_array_equal(back, kp)   # exact at the integer grid (well within the 1 px asked for)


def test_gaussian_heatmap_values_follow_cords_to_map():
    kp = np.full((18, 2), -1)
    kp[0] = (60, 30)
    maps = K.heatmaps(kp, (128, 64), sigma=6)
    assert maps[0, 60, 30] == pytest.approx(1.0)
    assert maps[0, 60, 36] == pytest.approx(math.exp(-0.5), rel=1e-6)   # distance sigma
    assert maps[0, 66, 36] == pytest.approx(math.exp(-1.0), rel=1e-6)   # distance sigma*sqrt(2)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    # the official formula, evaluated independently on the full grid
    yy, xx = np.mgrid[0:128, 0:64]
    reference = np.exp(-((yy - 60) ** 2 + (xx - 30) ** 2) / (2 * 6.0 ** 2))
    np.testing.assert_allclose(maps[0], reference, atol=1e-6)
    assert not maps[1:].any()                 # missing joints → zero channels


def test_gaussian_heatmaps_hold_no_subnormal_numbers():
    """Far from a joint the Gaussian falls below float32's smallest normal number (1.2e-38); such values make
    every convolution that reads them several times slower on x86 CPUs, so they are stored as 0."""
    kp = np.full((18, 2), -1)
    kp[0] = (0, 0)
    maps = K.heatmaps(kp, (256, 176), sigma=6)
    tiny = np.finfo(np.float32).tiny
    assert not ((maps > 0) & (maps < tiny)).any()
    assert maps[0, -1, -1] == 0.0 and maps[0, 60, 30] > tiny            # far corner flushed, the rest kept
    yy, xx = np.mgrid[0:256, 0:176]
    np.testing.assert_allclose(maps[0], np.exp(-(yy ** 2 + xx ** 2) / (2 * 6.0 ** 2)), atol=1e-6)


def test_onehot_mode_is_the_uint8_truncated_gaussian():
    kp = skeleton(256, 176)
    kp[5] = -1
    onehot = K.heatmaps(kp, (256, 176), mode="onehot")
    assert onehot.dtype == np.float32
    present = ~K.missing_mask(kp)
    assert (onehot.reshape(18, -1).sum(axis=1) == present).all()      # exactly one 1 per present joint
    assert set(np.unique(onehot)) == {0.0, 1.0}
    # what the official generate_pose_map_fashion.py stored: the Gaussian map cast to uint8
    np.testing.assert_array_equal(onehot, K.heatmaps(kp, (256, 176)).astype(np.uint8).astype(np.float32))


def test_unknown_heatmap_mode_is_refused():
    with pytest.raises(ValueError):
        K.heatmaps(skeleton(), (128, 64), mode="blobs")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------
def test_flip_mirrors_x_and_swaps_left_and_right():
    kp = skeleton()
    kp[4] = -1                                              # r_wrist missing
    flipped = K.flip_keypoints(kp, 64)
    j = K.JOINT_INDEX
    assert tuple(flipped[j["l_shoulder"]]) == (kp[j["r_shoulder"]][0], 63 - kp[j["r_shoulder"]][1])
    assert tuple(flipped[j["r_hip"]]) == (kp[j["l_hip"]][0], 63 - kp[j["l_hip"]][1])
    assert tuple(flipped[j["nose"]]) == (kp[j["nose"]][0], 63 - kp[j["nose"]][1])
    assert tuple(flipped[j["l_wrist"]]) == (-1, -1)          # the missing joint moved side, still missing
    assert tuple(flipped[j["r_eye"]]) == (kp[j["l_eye"]][0], 63 - kp[j["l_eye"]][1])
    np.testing.assert_array_equal(K.flip_keypoints(flipped, 64), kp)   # twice = identity


def test_flip_matches_the_mirrored_heatmaps():
    kp = skeleton()
    maps = K.heatmaps(kp, (128, 64))
    flipped_maps = K.heatmaps(K.flip_keypoints(kp, 64), (128, 64))
    np.testing.assert_allclose(flipped_maps, maps[list(K.FLIP_PERMUTATION)][:, :, ::-1], atol=1e-6)


def test_fashion_crop_round_trip_and_outside_joints():
    kp256 = skeleton(256, 256)
    kp256[:, 1] = np.clip(kp256[:, 1], 40, 215)
    kp176 = K.fashion_256_to_176(kp256)
    np.testing.assert_array_equal(kp176[:, 1], kp256[:, 1] - 40)
    np.testing.assert_array_equal(kp176[:, 0], kp256[:, 0])
    np.testing.assert_array_equal(K.fashion_176_to_256(kp176), kp256)
    edge = kp256.copy()
    edge[0] = (100, 39)      # left of the crop
    edge[1] = (100, 216)     # right of the crop
    out = K.fashion_256_to_176(edge)
    assert tuple(out[0]) == (-1, -1) and tuple(out[1]) == (-1, -1)


@pytest.mark.parametrize("factor", [2, 3])
def test_rescale_up_then_down_is_identity(factor):
    kp = skeleton()
    kp[2] = -1
    big = K.rescale_keypoints(kp, (128, 64), (128 * factor, 64 * factor))
    assert tuple(big[2]) == (-1, -1)
    assert abs(big[0, 0] - (kp[0, 0] + 0.5) * factor + 0.5) <= 0.5
    np.testing.assert_array_equal(K.rescale_keypoints(big, (128 * factor, 64 * factor), (128, 64)), kp)


def test_affine_identity_and_translation():
    kp = skeleton()
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    np.testing.assert_array_equal(K.affine_keypoints(kp, ident, (128, 64)), kp)
    shift = np.array([[1.0, 0, 3], [0, 1.0, -2]])          # x + 3, y - 2
    moved = K.affine_keypoints(kp, shift, (128, 64))
    np.testing.assert_array_equal(moved, kp + np.array([-2, 3]))
    far = np.array([[1.0, 0, 100], [0, 1.0, 0]])
    assert K.missing_mask(K.affine_keypoints(kp, far, (128, 64))).all()


def test_validate_keypoints_shapes_and_types():
    with pytest.raises(DataError, match="shape"):
        K.validate_keypoints(np.zeros((17, 2)))
    with pytest.raises(DataError, match="finite"):
        K.validate_keypoints(np.full((18, 2), np.nan))
    with pytest.raises(DataError, match="finite"):
        K.validate_keypoints(np.array([["a", "b"]] * 18))
    half = skeleton()
    half[3, 0] = -1                                         # one coordinate missing → the joint is missing
    assert tuple(K.validate_keypoints(half)[3]) == (-1, -1)


# ------------------------------------------------------------------------------------------------
# Masks and drawing
# ------------------------------------------------------------------------------------------------
def test_pose_mask_covers_limbs_and_joints():
    kp = skeleton()
    mask = K.pose_mask(kp, (128, 64))
    assert mask.dtype == bool and mask.shape == (128, 64)
    for y, x in kp:
        assert mask[y, x]
    for a, b in K.MASK_LIMBS:                                # the midpoint of every mask limb
        my, mx = np.rint((kp[a] + kp[b]) / 2).astype(int)
        assert mask[my, mx], (K.JOINT_NAMES[a], K.JOINT_NAMES[b])
    torso = (int((kp[1, 0] + kp[8, 0]) / 2), 32)
    assert mask[torso]                                      # torso polygon filled by hip/shoulder limbs
    assert not mask[0:3, :].any() and not mask[:, 0:3].any() and not mask[125:, :].any()
    assert 0.15 < mask.mean() < 0.7


def test_pose_mask_empty_for_missing_and_matches_official_closing():
    assert not K.pose_mask(np.full((18, 2), -1), (128, 64)).any()
    # one joint: a disc of radius 4 (48-49 pixels), unchanged by the 5x5 closing
    kp = np.full((18, 2), -1)
    kp[0] = (50, 30)
    mask = K.pose_mask(kp, (128, 64))
    ys, xs = np.nonzero(mask)
    assert 40 <= mask.sum() <= 60
    assert ys.min() >= 46 and ys.max() <= 54 and xs.min() >= 26 and xs.max() <= 34


def test_draw_skeleton_uses_limb_colours():
    kp = skeleton(256, 176)
    canvas = viz.draw_skeleton(kp, size=(256, 176))
    assert canvas.shape == (256, 176, 3) and canvas.dtype == np.uint8
    colours = {tuple(c) for c in canvas.reshape(-1, 3)}
    used = set(LIMB_COLORS)
    assert len(colours & used) >= 12                       # most limb colours appear
    # the neck–right-shoulder limb (colour 0) is drawn at its midpoint
    my, mx = np.rint((kp[1] + kp[2]) / 2).astype(int)
    assert tuple(canvas[my, mx]) in used
    assert tuple(canvas[0, 0]) == (0, 0, 0)
    # nothing drawn for an all-missing pose; drawing on a canvas does not modify it
    assert not viz.draw_skeleton(np.full((18, 2), -1), size=(32, 16)).any()
    base = np.full((256, 176, 3), 200, np.uint8)
    drawn = viz.draw_skeleton(kp, canvas=base)
    assert (base == 200).all() and (drawn != 200).any()
