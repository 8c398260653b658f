"""``posetransfer.evaluation.evaluate`` end to end on tiny hand-made PATN-layout datasets."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.data import keypoints as K
from posetransfer import viz
from posetransfer.errors import DataError, WeightsUnavailable
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
    return viz.draw_skeleton(kp, canvas=image, thickness=max(2, w // 16))


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


# --------------------------------------------------------------------------------------------------
# The official scripts' conventions, each pinned against a small reference of the official formula
# --------------------------------------------------------------------------------------------------
def patn_official_strip_scores(folder: Path) -> tuple[float, float]:
    """PATN ``getMetrics_market.py``: strips read in ``os.listdir`` order, panel width ``w = shape[1] / 5``,
    target ``img[:, 2w:3w]``, generated ``img[:, 4w:5w]``; compare_ssim (Gaussian 1.5, population covariance,
    data_range of the generated panel) and ``mean |2(r/255-.5) - 2(g/255-.5)|``."""
    from skimage.metrics import structural_similarity

    ssims, l1s = [], []
    for name in os.listdir(folder):
        img = np.asarray(Image.open(folder / name))
        w = int(img.shape[1] / 5)
        target, generated = img[:, 2 * w:3 * w], img[:, 4 * w:5 * w]
        ssims.append(structural_similarity(target, generated, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, channel_axis=2,
                                           data_range=generated.max() - generated.min()))
        l1s.append(np.abs(2 * (target / 255.0 - 0.5) - 2 * (generated / 255.0 - 0.5)).mean())
    return float(np.mean(ssims)), float(np.mean(l1s))


def test_official_strips_are_scored_against_their_own_target_panel_by_default(tmp_path):
    root = make_dataset(tmp_path / "market", ids=1, per_id=3)
    gen = tmp_path / "strips"
    for k, (a, b) in enumerate(K.read_pairs(root / "market-pairs-test.csv")):
        target = read_image(root / "test" / b)
        save_image(gen / f"{a}___{b}_vis.jpg", strip(read_image(root / "test" / a), target, degrade(target, 20, k)),
                   quality=70)  # the JPEG strip: its target panel is not the dataset's test image any more
    ssim, l1_value = patn_official_strip_scores(gen)
    default = evaluate(gen, root, "patn", metrics=["ssim", "l1"], progress=False)
    assert default["metrics"]["ssim"] == pytest.approx(ssim, rel=1e-9)
    assert default["metrics"]["l1"] == pytest.approx(l1_value, rel=1e-9)
    assert default["generated"]["reference"] == "strip" and "own target panel" in default["generated"]["reference_description"]
    assert default["generated"]["reference_counts"] == {"strip_target_panel": 6, "dataset_test_image": 0}
    dataset = evaluate(gen, root, "patn", metrics=["ssim", "l1"], reference="dataset", progress=False)
    assert dataset["generated"]["reference"] == "dataset"
    assert dataset["generated"]["reference_counts"] == {"strip_target_panel": 0, "dataset_test_image": 6}
    expected = []
    for p in gen.iterdir():
        a, b = p.name[:-len("_vis.jpg")].split("___")
        expected.append(ssim_patn(np.asarray(Image.open(p))[:, 4 * 64:], read_image(root / "test" / b)))
    assert dataset["metrics"]["ssim"] == pytest.approx(np.mean(expected))
    assert dataset["metrics"]["ssim"] != pytest.approx(ssim, rel=1e-4)


def test_gfla_l1_is_compare_l1_and_pona_psnr_is_the_y_channel(market, tmp_path):
    root, gen, expected = market
    pairs = list(expected.values())
    gfla = evaluate(gen, root, "gfla", metrics=["l1", "psnr"], progress=False)
    reference = [np.mean(np.abs(t.astype(np.float32) / 255 - f.astype(np.float32) / 255)) for f, t, _ in pairs]
    assert gfla["metrics"]["l1"] == pytest.approx(float(np.mean(reference)), rel=1e-6)
    assert gfla["settings"]["l1_range"] == "[0,1]" and "compare_l1" in gfla["settings"]["l1"]
    assert gfla["metrics"]["psnr"] == pytest.approx(np.mean([psnr(f, t) for f, t, _ in pairs]))
    patn = evaluate(gen, root, "patn", metrics=["l1"], resize="bicubic", progress=False)
    assert patn["settings"]["l1_range"] == "[-1,1]"
    assert patn["metrics"]["l1"] == pytest.approx(2 * gfla["metrics"]["l1"], rel=1e-9)
    pona = evaluate(gen, root, "pona", metrics=["psnr"], resize="bicubic", progress=False)
    from posetransfer.metrics.pixel import psnr_y

    assert pona["settings"]["psnr_kind"] == "y" and "Psnr.py" in pona["settings"]["psnr"]
    assert pona["metrics"]["psnr"] == pytest.approx(np.mean([psnr_y(f, t) for f, t, _ in pairs]))
    assert pona["metrics"]["psnr"] != pytest.approx(gfla["metrics"]["psnr"], abs=0.01)


class TinyFeatures(torch.nn.Module):
    """Stand-in for torchvision's Inception-v3 (its weights are not available offline): 2048 averages."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, (26, 27)).flatten(1)[:, :2048]


@pytest.fixture()
def standin_gfla_network(monkeypatch):
    """GFLA's FID kind through the real extractor (GFLA's preprocessing) with a tiny network behind it."""
    from posetransfer.weights import WeightsSource
    from posetransfer.weights import inception_torchvision as tv

    network = TinyFeatures()
    source = WeightsSource("stand-in for " + tv.NETWORK, "path", "/nonexistent/stand-in.pth", "tests")
    monkeypatch.setattr(tv, "build_imagenet_inception", lambda path=None: (network, source))
    return network


def gfla_features(network, images: list[np.ndarray]) -> np.ndarray:
    """GFLA's feature path (x/255, bilinear to 299, the mean/std formula) written out, then the network."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.stack(images).astype(np.float32).transpose(0, 3, 1, 2)) / 255
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return network(x * std / 0.5 + (mean - 0.5) / 0.5).double().numpy()


def gfla_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """GFLA ``calculate_activation_statistics`` (np.mean, np.cov rowvar=False) + the Fréchet distance."""
    from posetransfer.metrics.fid import frechet_distance

    return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))


def test_gfla_protocol_computes_gflas_fid_kind_and_names_it(tmp_path, standin_gfla_network):
    root = make_dataset(tmp_path / "data", ids=1, per_id=3, train=5)
    gen = tmp_path / "gen"
    fakes = []
    for a, b in K.read_pairs(root / "market-pairs-test.csv")[:4]:
        fakes.append(degrade(read_image(root / "test" / b), 25, len(fakes)))
        save_image(gen / f"{a}___{b}.png", fakes[-1])
    out = tmp_path / "r.json"
    results = evaluate(gen, root, "gfla", metrics=["fid"], cache_dir=tmp_path / "cache", out=out, progress=False)
    reals = [read_image(p) for p in sorted((root / "train").iterdir())]
    expected = gfla_fid(gfla_features(standin_gfla_network, reals), gfla_features(standin_gfla_network, fakes))
    assert results["metrics"]["fid"] == pytest.approx(expected, rel=1e-6)
    saved = json.loads(out.read_text())
    assert saved["settings"]["fid"]["kind"] == "gfla" and saved["settings"]["fid"]["preprocess"] == "gfla"
    assert "torchvision inception_v3" in saved["settings"]["fid"]["network"]
    assert saved["details"]["fid"]["kind"] == "gfla" and saved["details"]["fid"]["real_images"] == 5
    assert "inception_preprocess" not in saved["settings"]  # the TF network's preprocessing is not involved
    tf = evaluate(gen, root, "gfla", metrics=["fid"], fid_kind="tf", cache_dir=tmp_path / "cache", progress=False)
    assert tf["settings"]["fid"]["kind"] == "tf" and tf["settings"]["fid"]["network"].startswith("inception-2015")
    assert tf["metrics"]["fid"] != pytest.approx(results["metrics"]["fid"])
    assert tf["details"]["fid"]["cache_file"] != results["details"]["fid"]["cache_file"]  # kinds never share


def test_gfla_fid_without_its_weights_is_null_with_a_one_line_reason(market, tmp_path, monkeypatch):
    root, gen, _ = market
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.delenv("POSETRANSFER_IMAGENET_INCEPTION_WEIGHTS", raising=False)
    results = evaluate(gen, root, "gfla", metrics=["fid", "ssim"], progress=False)
    reason = results["unavailable"]["fid"]
    assert results["metrics"]["fid"] is None and "\n" not in reason and "--imagenet-inception-weights" in reason
    assert results["settings"]["fid"]["kind"] == "gfla" and results["metrics"]["ssim"] is not None
    with pytest.raises(WeightsUnavailable, match="nothere.pth: torchvision Inception-v3 weights file not found"):
        evaluate(gen, root, "gfla", metrics=["fid"], imagenet_inception_weights=tmp_path / "nothere.pth",
                 progress=False)


def test_drop_last_batch_keeps_the_images_gflas_script_keeps(tmp_path, standin_gfla_network):
    from torchvision.models import alexnet

    from posetransfer.metrics.ordering import gfla_fid_kept, gfla_lpips_kept

    root = make_dataset(tmp_path / "data", ids=1, per_id=9, train=66)  # 72 test pairs, 66 real images
    gen = tmp_path / "gen"
    for k, (a, b) in enumerate(K.read_pairs(root / "market-pairs-test.csv")[:67]):
        fake = degrade(read_image(root / "test" / b), 20, k)
        save_image(gen / f"{a}___{b}.{'jpg' if k % 3 == 0 else 'png'}", fake, quality=100)
    torch.manual_seed(0)
    alex = tmp_path / "alexnet-owt-7be5be79.pth"  # a stand-in AlexNet: LPIPS v0.1 code path, offline
    torch.save(alexnet(weights=None).state_dict(), alex)
    common = dict(metrics=["fid", "lpips"], lpips_weights=alex, cache_dir=tmp_path / "cache", progress=False)
    dropped = evaluate(gen, root, "gfla", drop_last_batch=True, **common)
    every = evaluate(gen, root, "gfla", **common)
    d, e = dropped["details"], every["details"]
    assert (d["fid"]["generated_images"], d["fid"]["generated_dropped"]) == (64, 3)
    assert (d["fid"]["real_images"], d["fid"]["real_dropped"]) == (64, 2)
    assert (d["lpips"]["n"], d["lpips"]["dropped"]) == (64, 3)
    assert (e["fid"]["generated_images"], e["fid"]["real_images"], e["lpips"]["n"]) == (67, 66, 67)
    assert dropped["settings"]["drop_last_batch"] is True and every["settings"]["drop_last_batch"] is False

    files = sorted(gen.iterdir())
    target = {p: read_image(root / "test" / p.name.split("___")[1].rsplit(".", 1)[0]) for p in files}
    fake_kept = gfla_fid_kept(files)  # glob('*.jpg') + glob('*.png'), first 64
    real_kept = gfla_fid_kept(sorted((root / "train").iterdir()))
    expected = gfla_fid(gfla_features(standin_gfla_network, [read_image(p) for p in real_kept]),
                        gfla_features(standin_gfla_network, [read_image(p) for p in fake_kept]))
    assert dropped["metrics"]["fid"] == pytest.approx(expected, rel=1e-5)  # float32 features, batched
    lpips = LPIPSMetric(alex, variant="standard")
    lpips_kept = gfla_lpips_kept(files)  # sorted names, first 64
    per_pair = lpips([read_image(p) for p in lpips_kept], [target[p] for p in lpips_kept])
    assert dropped["metrics"]["lpips"] == pytest.approx(float(np.mean(per_pair)), rel=1e-5)
    assert every["metrics"]["lpips"] != pytest.approx(dropped["metrics"]["lpips"], rel=1e-6)
    assert "st_lpips" not in every["metrics"] and every["weights"]["lpips"]["network"] == "LPIPS v0.1 alex"


class PixelClassifier:
    """Stand-in TF Inception with a classifier: 6 'classes' from the mean colour (IS order tests, cheap)."""

    has_logits = True

    def __init__(self, weights=None, preprocess_mode="tf", device="cpu", batch_size=32):
        from posetransfer.weights import WeightsSource

        self.preprocess_mode = preprocess_mode
        self.source = WeightsSource("stand-in classifier", "path", str(weights), "tests")

    @staticmethod
    def logits(images) -> np.ndarray:
        means = np.stack([im.reshape(-1, 3).mean(0) for im in images]) / 25.0
        return np.concatenate([means, -means], axis=1)

    def __call__(self, images):
        return torch.zeros(len(images), 2048, dtype=torch.float64), torch.from_numpy(self.logits(images))


def test_is_splits_can_follow_the_listdir_order_of_patns_script(tmp_path, monkeypatch):
    from posetransfer.metrics.inception_score import inception_score, softmax
    from posetransfer.weights import inception as tf_inception

    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"stand-in")
    monkeypatch.setattr(tf_inception, "InceptionExtractor", PixelClassifier)
    root = make_dataset(tmp_path / "data", ids=1, per_id=5, train=0)
    gen = tmp_path / "gen"
    pairs = K.read_pairs(root / "market-pairs-test.csv")
    for k, (a, b) in enumerate(pairs):
        save_image(gen / f"{a}___{b}.png", degrade(read_image(root / "test" / b), 5 + 4 * k, k))
    by_pairs = evaluate(gen, root, "patn", metrics=["is"], inception_weights=weights, progress=False)
    by_listdir = evaluate(gen, root, "patn", metrics=["is"], inception_weights=weights, is_order="listdir",
                          progress=False)
    in_pairs = [read_image(gen / f"{a}___{b}.png") for a, b in pairs]
    in_listdir = [read_image(gen / name) for name in os.listdir(gen)]
    expected_pairs = inception_score(softmax(PixelClassifier.logits(in_pairs)), 10)[0]
    expected_listdir = inception_score(softmax(PixelClassifier.logits(in_listdir)), 10)[0]
    assert by_pairs["metrics"]["is"] == pytest.approx(expected_pairs, rel=1e-9)
    assert by_listdir["metrics"]["is"] == pytest.approx(expected_listdir, rel=1e-9)
    assert by_listdir["details"]["is"]["order"] == "listdir" and by_listdir["settings"]["is_order"] == "listdir"
    if os.listdir(gen) != [f"{a}___{b}.png" for a, b in pairs]:
        assert by_listdir["metrics"]["is"] != pytest.approx(by_pairs["metrics"]["is"], rel=1e-9)


def test_only_the_networks_the_metrics_need_are_loaded(market, tmp_path, monkeypatch):
    from posetransfer.weights import inception as tf_inception

    root, gen, _ = market
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # only fid-helper's default_1.pt
    monkeypatch.delenv("POSETRANSFER_INCEPTION_WEIGHTS", raising=False)

    def no_loading(*args):
        raise AssertionError("the 90 MB Inception was loaded although IS cannot use it")

    monkeypatch.setattr(tf_inception, "_load_model", no_loading)
    results = evaluate(gen, root, "patn", metrics=["ssim", "is", "mask_is"], resize="bicubic", progress=False)
    assert results["metrics"]["is"] is None and "classifier" in results["unavailable"]["is"]


def test_pixel_metrics_and_st_lpips_import_neither_torchvision_nor_mediapipe(market):
    import subprocess
    import sys

    root, gen, _ = market
    code = (f"import sys; from posetransfer.evaluation import evaluate; "
            f"r = evaluate({str(gen)!r}, {str(root)!r}, 'all', metrics=['ssim', 'l1', 'psnr', 'st_lpips'], "
            f"progress=False); assert r['metrics']['st_lpips'] is not None; "
            f"print(sorted(m for m in ('torchvision', 'mediapipe') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_scorer_scores_images_in_memory_as_the_metrics_define_them():
    """posetransfer.evaluation.Scorer: the path evaluate() feeds from files, fed from memory (the demo's)."""
    from posetransfer.evaluation import Scorer
    from posetransfer.metrics.pixel import l1 as l1_metric
    from posetransfer.metrics.ssim import ssim_patn

    rng = np.random.default_rng(0)
    gens = [rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(3)]
    refs = [rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(3)]
    scorer = Scorer("patn", "market", metrics=["ssim", "l1"])
    scorer.add([(0, gens[0], refs[0], None), (1, gens[1], refs[1], None)])
    scorer.add([(2, gens[2], refs[2], None)])
    values, details = scorer.finish()
    assert values["ssim"] == pytest.approx(np.mean([ssim_patn(g, r) for g, r in zip(gens, refs)]), abs=0)
    assert values["l1"] == pytest.approx(np.mean([l1_metric(g, r) for g, r in zip(gens, refs)]), abs=0)
    assert details["ssim"]["n"] == 3
