"""The synthetic-people generator: CLI on real folders, determinism, splits, and keypoints vs. pixels."""
from __future__ import annotations

import hashlib
import itertools
import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from posetransfer import cli
from posetransfer.data import keypoints as K
from posetransfer.data import synth
from posetransfer.data.layout import find_split_files, identity_of
from posetransfer.data.synth import raster
from posetransfer.data.synth import writer as synth_writer
from posetransfer.errors import DataError, PoseError
from posetransfer.kinds import parse_kind

MAGENTA = np.array([255, 0, 255])


def run_cli(*args: str) -> int:
    return cli.main(["synth", *args])


def read_split(root, split):
    images, ann_csv, pairs_csv = find_split_files(root, split)
    annotations = K.read_annotations(ann_csv)
    return images, annotations, K.read_pairs(pairs_csv, known_names=annotations)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "market"
    assert run_cli("--out", str(root), "--identities", "5", "--poses", "4", "--seed", "3") == 0
    return root


# --------------------------------------------------------------------------------------------------
# Layout and loading
# --------------------------------------------------------------------------------------------------
def test_cli_writes_the_patn_layout_that_pair_dataset_loads(market, capsys):
    meta = json.loads((market / "dataset.json").read_text())
    assert meta["kind"] == "market" and meta["size"] == [128, 64] and meta["synthetic"] is True
    assert (meta["seed"], meta["identities"], meta["poses"]) == (3, 5, 4)
    assert meta["images"] == {"train": 16, "test": 4}  # default: 20% of the people in test
    for split in ("train", "test"):
        images, annotations, pairs = read_split(market, split)
        assert sorted(p.name for p in images.iterdir()) == sorted(annotations)
        assert len(pairs) == meta["pairs"][split] > 0
        for name in annotations:
            assert re.fullmatch(r"\d{4}_c[1-6]s[1-6]_\d{6}_01\.jpg", name), name
            with Image.open(images / name) as img:
                assert img.format == "JPEG" and img.size == (64, 128)
    import torch

    from posetransfer.data.dataset import PairDataset

    data = PairDataset(market, "train")
    item = data[0]
    assert data.kind == "market" and data.size == (128, 64)
    assert item["source_image"].shape == (3, 128, 64) and item["target_heatmaps"].shape == (18, 128, 64)
    assert item["source_name"] != item["target_name"]
    assert identity_of(item["source_name"], "market") == identity_of(item["target_name"], "market")
    assert torch.isfinite(item["target_image"]).all()


def test_fashion_size_writes_deepfashion_names_and_256x176_images(tmp_path):
    root = tmp_path / "fashion"
    assert run_cli("--out", str(root), "--size", "fashion", "--identities", "3", "--poses", "2",
                   "--test-identities", "1") == 0
    assert (root / "fasion-resize-annotation-train.csv").is_file()
    images, annotations, pairs = read_split(root, "train")
    assert len(annotations) == 4 and len(pairs) == 4
    for name in annotations:
        assert re.fullmatch(r"fashion(WOMEN|MEN)[A-Za-z_]+id\d{10}_\d+(front|side|back|additional)\.jpg", name), name
        assert re.fullmatch(r"id\d{10}", identity_of(name, "fashion"))
        with Image.open(images / name) as img:
            assert img.size == (176, 256)
    assert json.loads((root / "dataset.json").read_text())["size"] == [256, 176]


def test_identities_are_disjoint_across_splits_and_pairs_stay_within_one_person(market):
    ids = {}
    for split in ("train", "test"):
        _, annotations, pairs = read_split(market, split)
        ids[split] = {identity_of(n, "market") for n in annotations}
        assert all(identity_of(a, "market") == identity_of(b, "market") and a != b for a, b in pairs)
    assert len(ids["train"]) == 4 and len(ids["test"]) == 1
    assert not ids["train"] & ids["test"]


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------
def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path, market):
    again = synth.generate_dataset(tmp_path / "again", "market", identities=5, poses=4, seed=3, workers=2)
    assert files_of(again) == files_of(market)


def test_different_seeds_give_different_people(tmp_path, market):
    other = synth.generate_dataset(tmp_path / "other", "market", identities=5, poses=4, seed=4)
    a, b = files_of(market), files_of(other)
    assert a["market-annotation-train.csv"] != b["market-annotation-train.csv"]
    first = lambda files: next(v for k, v in files.items() if k.startswith("train/"))  # noqa: E731
    assert first(a) != first(b)


#: SHA-256 of every file of ``generate_dataset(out, size, identities=2, poses=2, seed=0)``, made at commit
#: 3ee7313 (before data/synth became a package) with numpy 1.26.4 and opencv-python-headless 4.11.0.86. A
#: change of these bytes is a change of every dataset made with a seed: it needs a reason (a deliberate
#: change of the generator, or an OpenCV/numpy upgrade) and a re-pin.
PINNED = {
    "market": {
        "dataset.json": "eb1e862ae6836e484813ccddf45196c152ae12e7d26b6eb54934e49a2c85b29a",
        "market-annotation-test.csv": "a564847bc5ae47e876d74392d6c1832c61cc903a4f7f11e00b81965dfc40a623",
        "market-annotation-train.csv": "7385eed67cfa1ffa9ac52b896fb46dadeff6240db178aeeaf882d22a877a75bd",
        "market-pairs-test.csv": "2ce3ac1403037b13f25db576b61a0c331b5a5b4917e821ecbfe37b9eb49709db",
        "market-pairs-train.csv": "293c97ad218eff2ea3e742598b797de5d647b342c06305d2ed131ade10c5a5ed",
        "test/0002_c3s1_239656_01.jpg": "0f2cd21b4e87a022ce7452d3b020dfab50f8ba3090e2c6640b24a8c37b421a4c",
        "test/0002_c4s4_588355_01.jpg": "3e6459397206ae242280fdb0828a8fb476cb286010ba9753448f2a6416cc6217",
        "train/0001_c2s2_070824_01.jpg": "1319e687d63a1524b60a1c179fc39b21d5d59cf07a431cf118ad6dea5829698f",
        "train/0001_c5s2_012047_01.jpg": "daf89cf5763f7a606ad1edee04478f01a1207ae439f504126ee725fad8657c23",
    },
    "fashion": {
        "dataset.json": "5e6a44137883770560ec263a1403bce3168c251fd4e74349748467b58ffbc13a",
        "fasion-resize-annotation-test.csv": "64dda5f0128ba3479d9e29824976cfec7bfc3db96b1080714bb02191723d50c2",
        "fasion-resize-annotation-train.csv": "bd50008cc9364a439191dc8a25c76dc77a816a660e6a0068aef7a89654e7df3c",
        "fasion-resize-pairs-test.csv": "19592318438a7ac4d90430bee7b91612e320f260e5fcf955c3f2c65f3b44efd6",
        "fasion-resize-pairs-train.csv": "d0eee52dccd4d46598fd66e42c22e0136209f7c864cb664ac5224e7f29592903",
        "test/fashionWOMENTees_Tanksid0000000201_1front.jpg":
            "77b76526328cad38308daa395e037b7ea2cdbdf4cb02b352c441d8fea334e74e",
        "test/fashionWOMENTees_Tanksid0000000201_2side.jpg":
            "203c931f442f6c9f5735121c0a15827499c6ee0e082a23258670f8f4c8f36c0a",
        "train/fashionWOMENJackets_Coatsid0000000105_1additional.jpg":
            "eeceeb9adc1233dc52a07204a52877027a7c6977bcd97aac9b072995f72256fb",
        "train/fashionWOMENJackets_Coatsid0000000105_2additional.jpg":
            "efd09014482baac0b56c9681ed74d57639590dac09b684965048b9b7fbab720b",
    },
}


def _pinned_platform_differs() -> str | None:
    """Why the pinned hashes cannot be expected here, or None.

    The hashes were made with numpy 1.26.4 and OpenCV 4.11.0 on a CPU with AVX-512 (SKX): numpy's float32
    transcendental functions take a different SIMD code path (other last-bit roundings) without it, and
    other library versions may round differently, so on another platform a changed byte says nothing about
    the generator. The seed-determinism tests above hold everywhere.
    """
    import cv2

    try:
        from numpy.core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy >= 2 moved it
        features = {}
    if np.__version__ != "1.26.4" or not cv2.__version__.startswith("4.11.0"):
        return f"hashes pinned with numpy 1.26.4 / OpenCV 4.11.0, not {np.__version__} / {cv2.__version__}"
    if not features.get("AVX512_SKX"):
        return "hashes pinned on a CPU with AVX-512 (numpy's float32 SIMD path differs without it)"
    return None


@pytest.mark.parametrize("size", sorted(PINNED))
def test_a_seed_still_gives_the_pinned_bytes(tmp_path, size):
    """Refactoring the generator must not change a dataset: every file of a tiny one is pinned by hash."""
    reason = _pinned_platform_differs()
    if reason:
        pytest.skip(reason)
    root = synth.generate_dataset(tmp_path / size, size, identities=2, poses=2, seed=0)
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files_of(root).items()}
    assert hashes == PINNED[size]


# --------------------------------------------------------------------------------------------------
# Keypoints agree with the drawing
# --------------------------------------------------------------------------------------------------
def test_annotated_keypoints_are_inside_the_image_or_missing(market):
    for split in ("train", "test"):
        _, annotations, _ = read_split(market, split)
        for name, kp in annotations.items():
            present = ~K.missing_mask(kp)
            assert (kp[present] >= 0).all() and (kp[present, 0] < 128).all() and (kp[present, 1] < 64).all()
            assert present[list(K.REQUIRED_FOR_PAIRS)].all(), name  # shoulders and hips are kept


@pytest.mark.parametrize("size", ["market", "fashion"])
def test_person_is_drawn_exactly_on_the_keypoints(size):
    """On a flat magenta backdrop: every visible joint is on the person, the skeleton mask is covered by
    the person and pixels far from the skeleton are backdrop."""
    h, w = parse_kind(size).size
    backdrop = np.broadcast_to(MAGENTA.astype(np.uint8), (h, w, 3)).copy()
    inside, far = [], []
    for seed in range(12):
        image, kp = synth.render_person(seed, seed + 100, size, background=backdrop)
        assert image.shape == (h, w, 3) and image.dtype == np.uint8 and kp.shape == (18, 2)
        person = np.abs(image.astype(int) - MAGENTA).sum(axis=2) > 60
        present = ~K.missing_mask(kp)
        assert present.sum() >= 8
        assert person[kp[present, 0], kp[present, 1]].all(), f"seed {seed}: a visible joint is on the backdrop"
        mask = K.pose_mask(kp, (h, w))
        inside.append(person[mask].mean())
        radius = 0.1 * h  # wider than any limb, head or skirt
        far_away = ndimage.distance_transform_edt(~mask) > radius
        far.append(person[far_away].mean())
    assert np.mean(inside) > 0.85
    assert np.mean(far) < 0.02


def test_hidden_face_points_are_missing_in_back_and_side_views():
    ix = K.JOINT_INDEX
    for seed in range(6):
        ident = synth.sample_identity(seed)
        _, back = synth.render_person(ident, synth.PoseParams(view="back", family="stand", yaw=180.0))
        assert (back[[ix["nose"], ix["r_eye"], ix["l_eye"]]] == -1).all()
        _, side = synth.render_person(ident, synth.PoseParams(view="side", family="stand", yaw=90.0))
        ears = side[[ix["r_ear"], ix["l_ear"]]]
        assert ((ears == -1).all(axis=1)).sum() == 1  # the far ear
        _, front = synth.render_person(ident, synth.PoseParams(view="front", family="stand", yaw=0.0))
        assert (front[[ix["nose"], ix["r_eye"], ix["l_eye"]]] >= 0).all()
        assert front[ix["r_shoulder"], 1] < front[ix["l_shoulder"], 1]  # the person's right on the image left


def test_a_hand_behind_the_back_is_missing_in_front_view_but_not_from_behind():
    ix = K.JOINT_INDEX
    hidden = shown = 0
    for seed in range(6):
        ident = synth.sample_identity(seed)
        for yaw, counter in ((0.0, "front"), (180.0, "back")):
            pose = synth.sample_pose(seed, view="front", family="behind")
            pose = synth.PoseParams(**{**pose.__dict__, "yaw": yaw, "head_turn": 0.0})
            _, kp = synth.render_person(ident, pose)
            wrists = kp[[ix["r_wrist"], ix["l_wrist"]]]
            if counter == "front":
                hidden += int((wrists == -1).all(axis=1).sum())
            else:
                shown += int((wrists >= 0).all(axis=1).sum())
    assert hidden >= 8 and shown >= 8


def test_drawing_through_given_keypoints_returns_them():
    _, kp = synth.render_person(1, 2, "fashion")
    ident = synth.sample_identity(9, "fashion")
    image, again = synth.render_person(ident, kp, "fashion")
    assert image.shape == (256, 176, 3)
    assert np.array_equal(again, kp)
    bad = kp.copy()
    bad[[K.JOINT_INDEX["r_hip"]]] = -1
    with pytest.raises(PoseError):
        synth.render_person(ident, bad, "fashion")


# --------------------------------------------------------------------------------------------------
# Hard but learnable: poses vary a lot, appearance stays with the person
# --------------------------------------------------------------------------------------------------
def torso_colour(image, kp):
    """Median colour along the spine between chest and belly."""
    ix = K.JOINT_INDEX
    neck = kp[ix["neck"]].astype(float)
    hip = (kp[ix["r_hip"]] + kp[ix["l_hip"]]) / 2.0
    samples = []
    for f in np.linspace(0.35, 0.75, 9):
        y, x = np.rint(neck + (hip - neck) * f).astype(int)
        samples.append(image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3))
    return np.median(np.concatenate(samples), axis=0)


def test_poses_move_the_body_a_lot_while_clothes_stay_with_the_person():
    displacement, colours = [], []
    for person in range(10):
        ident, plan = synth.plan_identity(11, "market", person, 5)
        kps, cols = [], []
        for k, (_, view, camera) in enumerate(plan):
            image, kp = synth.render_dataset_image(11, "market", person, k, view, camera, ident=ident)
            kps.append(kp)
            cols.append(torso_colour(image, kp))
        colours.append(np.array(cols))
        for a, b in itertools.combinations(kps, 2):
            both = ~K.missing_mask(a) & ~K.missing_mask(b)
            displacement.append(np.linalg.norm((a - b)[both], axis=1).mean())
    assert np.mean(displacement) > 8.0  # pixels, in 128x64 images
    assert np.percentile(displacement, 25) > 4.0
    within = np.mean([np.linalg.norm(c - c.mean(axis=0), axis=1).mean() for c in colours])
    means = [c.mean(axis=0) for c in colours]
    between = np.mean([np.linalg.norm(a - b) for a, b in itertools.combinations(means, 2)])
    assert within < 0.7 * between


def test_views_and_pose_families_are_all_used():
    views, families = set(), set()
    for seed in range(200):
        pose = synth.sample_pose(seed)
        views.add(pose.view)
        families.add(pose.family)
    assert views == set(synth.VIEWS) and families == set(synth.FAMILIES)


# --------------------------------------------------------------------------------------------------
# Output folder safety and errors
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--identities", "1"], "identities must be at least 2"),
    (["--poses", "1"], "poses must be at least 2"),
    (["--identities", "3", "--test-identities", "3"], "test identities must be fewer"),
    (["--seed", "-2"], "seed must be at least 0"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert run_cli("--out", str(tmp_path / "ds"), *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "ds").exists()


def test_refuses_a_foreign_folder_unless_overwrite(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert run_cli("--out", str(folder), "--identities", "2", "--poses", "2") == 2
    err = capsys.readouterr().err.strip()
    assert str(folder) in err and "--overwrite" in err and "\n" not in err
    assert (folder / "notes.txt").read_text() == "keep me"
    assert run_cli("--out", str(folder), "--identities", "2", "--poses", "2", "--overwrite") == 0
    assert not (folder / "notes.txt").exists() and synth.is_synth_dataset(folder)


def test_an_earlier_synthetic_dataset_is_replaced(tmp_path):
    root = synth.generate_dataset(tmp_path / "ds", identities=3, poses=3, seed=1)
    synth.generate_dataset(root, identities=2, poses=2, seed=2)
    meta = json.loads((root / "dataset.json").read_text())
    assert (meta["identities"], meta["seed"]) == (2, 2)
    assert len(list((root / "train").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folders left behind


def test_an_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    calls = []

    def failing(job, *writer):
        if calls:
            raise KeyboardInterrupt
        calls.append(job)
        return real(job, *writer)

    real = synth_writer.write_identity
    monkeypatch.setattr(synth_writer, "write_identity", failing)
    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(tmp_path / "ds", identities=3, poses=2)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_dataset(tmp_path, capsys, monkeypatch):
    """The images are written on a background thread; its failure still reaches the command line."""
    import errno

    from posetransfer import io

    written = []

    def disk_fills_up(path, data):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        written.append(path)

    monkeypatch.setattr(io, "write_new_file", disk_fills_up)
    assert run_cli("--out", str(tmp_path / "ds"), "--identities", "3", "--poses", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "No space left on device" in err and "\n" not in err
    assert ".jpg: cannot write the file" in err
    assert list(tmp_path.iterdir()) == []


def test_library_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="market or fashion"):
        synth.generate_dataset(tmp_path / "x", size="cityscapes")
    with pytest.raises(DataError, match="identities must be an integer"):
        synth.generate_dataset(tmp_path / "x", identities="many")


def _blank_canvas(h: int = 40, w: int = 30) -> raster.Canvas:
    return raster.Canvas(np.zeros((3, h, w), dtype=np.float32), (0.0, 0.0, 1.0), 0.5)


def test_batched_capsules_match_each_capsule_drawn_alone():
    """The flat pass over several capsules gives every capsule the geometry it has on its own."""
    colour = np.ones(3, dtype=np.float32)
    caps = [raster.Capsule((5.0, 5.0), (20.0, 30.0), 3.0, 2.0, 1, colour),
            raster.Capsule((25.0, 2.0), (4.0, 12.0), 2.5, 2.5, 2, colour),
            raster.Capsule((100.0, 100.0), (120.0, 110.0), 2.0, 2.0, 3, colour),   # off the canvas
            raster.Capsule((15.0, 20.0), (15.0, 20.0), 4.0, 4.0, 4, colour)]       # a disc
    cv = _blank_canvas()
    batch = cv.capsules(caps)
    assert batch.kept == [0, 1, 3]
    for j, i in enumerate(batch.kept):
        alone = cv.capsules([caps[i]])
        seg = slice(batch.offsets[j], batch.offsets[j + 1])
        assert batch.boxes[j] == alone.boxes[0]
        for name in ("alpha", "t", "s"):
            np.testing.assert_array_equal(getattr(batch, name)[seg], getattr(alone, name))
    # coverage of the disc (centre (15, 20), radius 4): 1 inside, 1/2 on the circle, 0 beyond radius + 1/2
    disc = cv.capsules([caps[3]])
    ya, yb, xa, xb = disc.boxes[0]
    alpha = disc.alpha.reshape(yb - ya, xb - xa)
    assert alpha[20 - ya, 15 - xa] == 1.0 and alpha[20 - ya, 17 - xa] == 1.0
    assert abs(alpha[20 - ya, 19 - xa] - 0.5) < 1e-5 and alpha[20 - ya, 20 - xa] == 0.0


def test_capsule_layers_blend_in_depth_order_and_record_the_top_part():
    """Pasted layers composite over the image (the nearer on top) and part_at reports the top one."""
    cv = _blank_canvas()
    red, blue = np.array([1, 0, 0], np.float32), np.array([0, 0, 1], np.float32)
    caps = [raster.Capsule((5.0, 20.0), (25.0, 20.0), 3.0, 3.0, 1, red, flat=1.0),
            raster.Capsule((15.0, 5.0), (15.0, 35.0), 3.0, 3.0, 2, blue, flat=1.0)]
    batch = cv.capsules(caps)
    keep, premultiplied = raster.colour_capsules(cv, caps, batch, scale=100.0)
    for j, i in enumerate(batch.kept):
        seg = slice(batch.offsets[j], batch.offsets[j + 1])
        cv.paste(batch.boxes[j], keep[seg], premultiplied[:, seg], batch.alpha[seg], caps[i].part)
    np.testing.assert_allclose(cv.img[:, 20, 15], blue)          # the crossing: the later (nearer) part
    np.testing.assert_allclose(cv.img[:, 20, 7], red)
    np.testing.assert_allclose(cv.img[:, 0, 0], 0.0)
    assert (cv.part_at(20, 15), cv.part_at(20, 7), cv.part_at(0, 0)) == (2, 1, 0)


def test_finish_rounds_and_saturates_the_planes_into_an_rgb_image():
    planes = np.zeros((3, 2, 2), dtype=np.float32)
    planes[0] = 1.0          # red: full
    planes[1, 0, 0] = 0.5    # green: half, rounded
    planes[2, 1, 1] = 3.0    # blue: above the range, saturated
    image = raster.finish(planes, 1.0, (1.0, 1.0, 1.0))
    assert image.dtype == np.uint8 and image.shape == (2, 2, 3) and image.flags["C_CONTIGUOUS"]
    assert image[..., 0].tolist() == [[255, 255], [255, 255]]
    assert image[0, 0, 1] == 128 and image[1, 1, 2] == 255 and image[0, 1, 2] == 0
