"""``posetransfer.evaluation.evaluate`` end to end on tiny hand-made PATN-layout datasets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.data import keypoints as K
from posetransfer.errors import DataError
from posetransfer.evaluation import evaluate
from posetransfer.io import read_image, save_image, write_json
from posetransfer.metrics.lpips import LPIPSMetric
from posetransfer.metrics.pixel import l1, psnr
from posetransfer.metrics.ssim import ssim_gfla, ssim_patn

BASE = np.array([[16, 32], [28, 32], [28, 22], [44, 18], [60, 16], [28, 42], [44, 46], [60, 48], [64, 26],
                 [86, 26], [110, 26], [64, 38], [86, 38], [110, 38], [13, 29], [13, 35], [15, 26], [15, 38]])


def person(kp: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A stick figure on a smooth textured background (enough structure for SSIM/LPIPS to react)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 3)
    bg = np.stack([110 + 60 * np.sin(xx / 7 + c + phase) * np.cos(yy / 11 - c) for c in range(3)], -1)
    image = np.clip(bg + rng.normal(0, 6, bg.shape), 0, 255).astype(np.uint8)
    return K.draw_skeleton(kp, canvas=image, thickness=max(2, w // 16))


def make_dataset(root: Path, kind: str = "market", size=(128, 64), ids: int = 2, per_id: int = 2,
                 train: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    prefix = "market" if kind == "market" else "fasion-resize"
    scale = np.array(size) / np.array([128, 64])
    for split, count in (("train", train), ("test", ids * per_id)):
        annotations = {}
        for i in range(count):
            ident = i // per_id if split == "test" else 50 + i
            name = f"{ident:04d}_c1s1_{i:06d}_01.jpg"
            kp = np.rint((BASE + rng.integers(-3, 4, BASE.shape)) * scale).astype(int)
            annotations[name] = kp
            save_image(root / split / name, person(kp, size, rng))
        K.write_annotations(root / f"{prefix}-annotation-{split}.csv", annotations)
        names = list(annotations)
        K.write_pairs(root / f"{prefix}-pairs-{split}.csv",
                      [(a, b) for a in names for b in names if a != b and a[:4] == b[:4]])
    write_json(root / "dataset.json", {"kind": kind, "size": list(size)})
    return root


def degrade(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def strip(source: np.ndarray, target: np.ndarray, generated: np.ndarray) -> np.ndarray:
    black = np.zeros_like(target)
    return np.concatenate([source, black, target, black, generated], axis=1)


@pytest.fixture()
def market(tmp_path):
    """4 test pairs: two as .png, one as an official _vis strip, one at another size; plus an extra file."""
    root = make_dataset(tmp_path / "market")
    gen = tmp_path / "generated"
    pairs = K.read_pairs(root / "market-pairs-test.csv")
    expected = {}
    for k, (a, b) in enumerate(pairs):
        target = read_image(root / "test" / b)
        fake = degrade(target, 10 + 10 * k, k)
        if k == 1:
            save_image(gen / f"{a}___{b}_vis.png", strip(read_image(root / "test" / a), target, fake))
        elif k == 2:
            big = np.asarray(Image.fromarray(fake).resize((96, 192), Image.BICUBIC))
            save_image(gen / f"{a}___{b}.png", big)
            fake = np.asarray(Image.fromarray(big).resize((64, 128), Image.BICUBIC))
        else:
            save_image(gen / f"{a}___{b}.png", fake)
        expected[(a, b)] = (fake, target, K.read_annotations(root / "market-annotation-test.csv")[b])
    save_image(gen / "unrelated.png", np.zeros((8, 8, 3), np.uint8))
    return root, gen, expected


def test_metrics_equal_the_metric_functions_on_matched_pairs(market, tmp_path, monkeypatch):
    root, gen, expected = market
    out = tmp_path / "results.json"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # offline: no AlexNet for LPIPS v0.1
    monkeypatch.delenv("POSETRANSFER_ALEXNET_WEIGHTS", raising=False)
    results = evaluate(gen, root, "all", metrics=["ssim", "ssim_win51", "mask_ssim", "l1", "psnr", "mask_psnr",
                                                 "lpips", "mask_lpips"], out=out, progress=False)
    fakes = [v[0] for v in expected.values()]
    targets = [v[1] for v in expected.values()]
    masks = [K.pose_mask(v[2], (128, 64)) for v in expected.values()]
    m = results["metrics"]
    assert m["ssim"] == pytest.approx(np.mean([ssim_patn(f, t) for f, t in zip(fakes, targets)]))
    assert m["ssim_win51"] == pytest.approx(np.mean([ssim_gfla(f, t) for f, t in zip(fakes, targets)]))
    assert m["mask_ssim"] == pytest.approx(np.mean([ssim_patn(f, t, mask=k) for f, t, k in zip(fakes, targets, masks)]))
    assert m["l1"] == pytest.approx(np.mean([l1(f, t) for f, t in zip(fakes, targets)]))
    assert m["psnr"] == pytest.approx(np.mean([psnr(f, t) for f, t in zip(fakes, targets)]))
    assert m["mask_psnr"] == pytest.approx(np.mean([psnr(f, t, mask=k) for f, t, k in zip(fakes, targets, masks)]))
    # offline the shift-tolerant LPIPS is computed, under its own keys; lpips stays null with the reason
    lp = LPIPSMetric(variant="shift-tolerant")
    assert m["lpips"] is None and m["mask_lpips"] is None
    assert "st_lpips" in results["unavailable"]["lpips"] and "--lpips-weights" in results["unavailable"]["lpips"]
    assert m["st_lpips"] == pytest.approx(float(np.mean(lp(fakes, targets))), rel=1e-5)
    assert m["mask_st_lpips"] == pytest.approx(float(np.mean(lp(fakes, targets, masks))), rel=1e-5)
    # what was matched and how, all in the file
    saved = json.loads(out.read_text())
    assert saved["metrics"] == pytest.approx(m)
    g = saved["generated"]
    assert (g["matched"], g["single"], g["strip"], g["missing"], g["extra"]) == (4, 3, 1, 0, 1)
    assert g["resized"] == 1 and "bicubic" in g["resize_method"]
    assert g["extra_examples"] == ["unrelated.png"]
    assert saved["dataset"]["resolution"] == [128, 64] and saved["dataset"]["kind"] == "market"
    assert saved["protocol"]["name"] == "all" and saved["settings"]["ssim_white_pad"] == 0
    assert saved["weights"]["st_lpips"]["kind"] == "package" and "lpips" not in saved["weights"]
    assert saved["generated"]["reference"] == "strip"  # the strip is scored against its own target panel
    assert saved["generated"]["reference_counts"] == {"strip_target_panel": 1, "dataset_test_image": 3}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_missing_pairs_are_reported_and_can_be_required(market, tmp_path):
    root, gen, expected = market
    first = next(iter(expected))
    (gen / f"{first[0]}___{first[1]}.png").unlink()
    results = evaluate(gen, root, "fast", metrics=["l1"], progress=False)
    assert results["generated"]["missing"] == 1 and results["generated"]["evaluated"] == 3
    assert results["generated"]["missing_examples"] == [f"{first[0]}___{first[1]}"]
    with pytest.raises(DataError, match=r"1 of 4 test pairs have no generated image"):
        evaluate(gen, root, "fast", metrics=["l1"], progress=False, require_all=True)


def test_patn_protocol_rejects_resized_outputs_and_strip_reference_is_official(market):
    root, gen, _ = market
    with pytest.raises(DataError, match=r"\.png: generated image is 192x96 but the ground truth is 128x64"):
        evaluate(gen, root, "patn", metrics=["ssim"], progress=False)
    # strips use their own panel, single images (which have none) the dataset's test image — in one folder
    mixed = evaluate(gen, root, "fast", metrics=["ssim"], reference="strip", progress=False)["generated"]
    assert mixed["reference_counts"] == {"strip_target_panel": 1, "dataset_test_image": 3}
    with pytest.raises(DataError, match="unknown reference 'panel'"):
        evaluate(gen, root, "fast", metrics=["ssim"], reference="panel", progress=False)


def test_unavailable_networks_give_null_with_the_reason(market, tmp_path, monkeypatch):
    root, gen, _ = market
    monkeypatch.delenv("POSETRANSFER_DETECTOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # no cached detector / Inception
    results = evaluate(gen, root, "patn", metrics=["ssim", "is", "ds"], resize="bicubic", progress=False)
    assert results["metrics"]["is"] is None and results["metrics"]["ds"] is None
    assert "classifier" in results["unavailable"]["is"] and "--inception-weights" in results["unavailable"]["is"]
    assert "--detector-weights" in results["unavailable"]["ds"]
    assert results["metrics"]["ssim"] is not None


def test_fid_uses_the_training_images_and_caches_them(tmp_path):
    root = make_dataset(tmp_path / "data", ids=1, per_id=3, train=3)
    gen = tmp_path / "gen"
    for a, b in K.read_pairs(root / "market-pairs-test.csv")[:3]:
        save_image(gen / f"{a}___{b}.png", degrade(read_image(root / "test" / b), 25, 0))
    cache = tmp_path / "cache"
    first = evaluate(gen, root, "fast", metrics=["fid"], cache_dir=cache, progress=False)
    second = evaluate(gen, root, "fast", metrics=["fid"], cache_dir=cache, progress=False)
    d1, d2 = first["details"]["fid"], second["details"]["fid"]
    assert (d1["cache"], d2["cache"]) == ("miss", "hit")
    assert d1["real_images"] == 3 and d1["generated_images"] == 3 and d1["real_dir"].endswith("train")
    assert first["metrics"]["fid"] == pytest.approx(second["metrics"]["fid"]) and first["metrics"]["fid"] > 0
    assert first["weights"]["fid"]["network"].startswith("inception-2015-12-05")
    assert first["settings"]["inception_preprocess"] == "tf"


def test_deepfashion_ssim_is_padded_under_the_patn_protocol(tmp_path):
    root = make_dataset(tmp_path / "fashion", kind="fashion", size=(256, 176), ids=1, per_id=2, train=0)
    gen = tmp_path / "gen"
    pairs = K.read_pairs(root / "fasion-resize-pairs-test.csv")
    fakes = {}
    for a, b in pairs:
        target = read_image(root / "test" / b)
        fakes[b] = (degrade(target, 30, 1), target)
        save_image(gen / f"{a}___{b}_vis.jpg", strip(read_image(root / "test" / a), target, fakes[b][0]), quality=100)
    official = evaluate(gen, root, "patn", metrics=["ssim"], reference="strip", progress=False)
    assert official["settings"]["ssim_white_pad"] == 40 and official["dataset"]["kind"] == "fashion"
    panels = [(np.asarray(Image.open(p))[:, 4 * 176:], np.asarray(Image.open(p))[:, 2 * 176:3 * 176])
              for p in sorted(gen.iterdir())]
    assert official["metrics"]["ssim"] == pytest.approx(np.mean([ssim_patn(g, t, pad_white=40) for g, t in panels]))
    gfla = evaluate(gen, root, "gfla", metrics=["ssim"], progress=False)
    assert gfla["metrics"]["ssim"] < official["metrics"]["ssim"]  # the white border inflates PATN's SSIM


def test_pckh_runs_the_pose_estimator_on_generated_images(tmp_path):
    pytest.importorskip("mediapipe")
    import importlib.util

    from posetransfer.pose import estimate_keypoints

    spec = importlib.util.find_spec("ultralytics")
    if spec is None:
        pytest.skip("ultralytics asset not installed")
    bus = Path(list(spec.submodule_search_locations)[0]) / "assets" / "bus.jpg"
    with Image.open(bus) as img:
        walker = np.asarray(img.convert("RGB").crop((45, 380, 255, 920)).resize((64, 128), Image.BICUBIC))
    root = tmp_path / "data"
    names = ["0001_c1s1_000001_01.jpg", "0001_c1s1_000002_01.jpg"]
    for name, image in zip(names, (walker, walker[:, ::-1])):
        save_image(root / "test" / name, image, quality=100)
    annotations = {n: estimate_keypoints(read_image(root / "test" / n)) for n in names}
    K.write_annotations(root / "market-annotation-test.csv", annotations)
    K.write_pairs(root / "market-pairs-test.csv", [(names[0], names[1]), (names[1], names[0])])
    gen = tmp_path / "gen"
    save_image(gen / f"{names[0]}___{names[1]}.png", read_image(root / "test" / names[1]))  # perfect output
    save_image(gen / f"{names[1]}___{names[0]}.png", np.full((128, 64, 3), 90, np.uint8))  # nobody there
    results = evaluate(gen, root, "patn", metrics=["pckh"], progress=False)
    present = [int((~K.missing_mask(annotations[n])).sum()) for n in names]
    assert results["metrics"]["pckh"] == pytest.approx(present[1] / (present[0] + present[1]))
    detail = results["details"]["pckh"]
    assert detail["no_person_found"] == 1 and detail["images"] == 2
    assert "BlazePose" in results["weights"]["pckh"]["network"]


def test_bad_inputs_are_data_errors_naming_the_path(market, tmp_path):
    root, gen, _ = market
    with pytest.raises(DataError, match="nothing: generated image folder not found"):
        evaluate(tmp_path / "nothing", root, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty: no generated image matches a test pair"):
        evaluate(empty, root, progress=False)
