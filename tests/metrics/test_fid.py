"""FID: the Inception port, the Fréchet distance, behaviour on real images, and the real-set cache."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg
from skimage import data

from posetransfer.errors import WeightsUnavailable
from posetransfer.metrics.fid import FeatureStats, fid_from_stats, frechet_distance, real_set_statistics
from posetransfer.weights.inception import (FIDInceptionV3, InceptionExtractor, build_inception,
                                            fid_helper_default_file, preprocess)

def astronaut_crops(n: int, size=(128, 64)) -> list[np.ndarray]:
    """``n`` different real-photo crops (a sliding window over the astronaut image, downscaled)."""
    photo = data.astronaut()
    out = []
    for i in range(n):
        y, x = 16 * (i % 5), 40 + 48 * (i // 5)
        window = photo[y:y + 2 * size[0] + 64, x:x + 2 * size[1] + 32]
        out.append(np.asarray(Image.fromarray(window).resize((size[1], size[0]), Image.BICUBIC)))
    return out


def add_noise(images: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [np.clip(im + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8) for im in images]


@pytest.fixture(scope="module")
def extractor() -> InceptionExtractor:
    return InceptionExtractor(batch_size=16)


def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook FID with scipy's matrix square root (pytorch-fid's formula)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_frechet_distance_matches_the_scipy_formula_in_both_regimes():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6))
    b = rng.normal(loc=0.3, scale=1.4, size=(150, 6))
    stats = FeatureStats(dim=6, keep=True)
    stats.update(b[:70])
    stats.update(b[70:])
    mu, cov = stats.mean_cov()
    np.testing.assert_allclose(mu, b.mean(0))
    np.testing.assert_allclose(cov, np.cov(b, rowvar=False), atol=1e-10)
    expected = reference_fid(a, b)
    assert frechet_distance(a.mean(0), np.cov(a, rowvar=False), mu, cov) == pytest.approx(expected, rel=1e-8)
    # fewer samples than dimensions: the low-rank formula on the kept features gives the same value
    few = rng.normal(size=(4, 6))
    small = FeatureStats(dim=6, keep=True)
    small.update(few)
    fast = fid_from_stats((a.mean(0), np.cov(a, rowvar=False)), small)
    assert fast == pytest.approx(reference_fid(a, few), rel=1e-6)


def test_eager_inception_reproduces_the_shipped_torchscript_network(extractor):
    import warnings

    images = astronaut_crops(2)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(fid_helper_default_file()), map_location="cpu").eval()
    with torch.inference_mode():
        expected = scripted(preprocess(x, "tf"))
    ours, logits = extractor(images)
    assert logits is None and not extractor.has_logits  # default_1.pt has no classifier: no IS from it
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours.float(), expected, atol=1e-4, rtol=1e-4)
    assert extractor.source.kind == "package" and "default_1.pt" in extractor.source.location


def test_state_dict_weights_load_with_pytorch_fid_names(extractor, tmp_path):
    # a pytorch-fid style file (torchvision names + a 1008-way fc): the same conv weights must give the same
    # features, and the classifier must be picked up for IS.
    model = extractor.model
    state = {k: v for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    state["fc.weight"] = torch.randn(1008, 2048) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    loaded, source = build_inception(path)
    assert source.kind == "path" and loaded.has_classifier
    images = astronaut_crops(2)
    x = preprocess(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float(), "tf")
    with torch.inference_mode():
        f1, logits = loaded(x)
        f2, _ = model(x)
    torch.testing.assert_close(f1, f2)
    torch.testing.assert_close(logits, f1 @ state["fc.weight"].t())  # unbiased logits, as the TF IS script
    broken = {k: v for k, v in state.items() if not k.startswith("Mixed_7c")}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightsUnavailable, match="broken.pth.*not the FID Inception"):
        build_inception(tmp_path / "broken.pth")
    with pytest.raises(WeightsUnavailable, match="nothere.pth"):
        build_inception(tmp_path / "nothere.pth")


def test_fid_is_zero_for_identical_sets_and_grows_with_noise(extractor):
    clean = astronaut_crops(20)
    clean_features = extractor(clean)[0].numpy()
    real = FeatureStats()
    real.update(clean_features)
    ref = real.mean_cov()
    same = FeatureStats(keep=True)  # the extractor is deterministic: the same images give these features
    same.update(clean_features)
    scores = []
    for sigma in (8, 40):
        fake = FeatureStats(keep=True)
        fake.update(extractor(add_noise(clean, sigma))[0].numpy())
        scores.append(fid_from_stats(ref, fake))
    identical = fid_from_stats(ref, same)
    assert identical == pytest.approx(0.0, abs=1e-3)
    assert 0.5 < scores[0] < scores[1]


class PixelFeatures:
    """A cheap stand-in extractor (2048 grey pixels of a 32×64 thumbnail) for testing the cache logic only."""

    calls = 0

    def identity(self) -> str:
        return "pixels-32x64"

    def __call__(self, images):
        PixelFeatures.calls += len(images)
        thumbs = [np.asarray(Image.fromarray(im).convert("L").resize((64, 32)), np.float64).ravel() for im in images]
        return torch.from_numpy(np.stack(thumbs)), None


def test_real_set_statistics_are_cached_by_content(tmp_path):
    extractor = PixelFeatures()
    folder = tmp_path / "train"
    folder.mkdir()
    files = []
    crops = astronaut_crops(3)
    for i, image in enumerate(crops[:2]):
        files.append(folder / f"{i}.png")
        Image.fromarray(image).save(files[-1])
    Image.fromarray(crops[2][::2, ::2]).save(folder / "small.png")  # another size → resized
    files.append(folder / "small.png")
    cache = tmp_path / "cache"
    first = real_set_statistics(files, extractor, (128, 64), cache_dir=cache)
    assert first.cache == "miss" and first.n == 3 and first.resized == 1
    assert list((cache / "fid").glob("*.npz")) and not list((cache / "fid").glob("*.tmp"))
    calls = PixelFeatures.calls
    second = real_set_statistics(files, extractor, (128, 64), cache_dir=cache)
    assert second.cache == "hit" and PixelFeatures.calls == calls  # nothing recomputed
    np.testing.assert_array_equal(first.sigma, second.sigma)
    np.testing.assert_array_equal(first.mu, second.mu)
    # touching a file (new mtime), another resolution or another file list invalidates the entry
    stamp = time.time() + 5
    os.utime(files[0], (stamp, stamp))
    assert real_set_statistics(files, extractor, (128, 64), cache_dir=cache).cache == "miss"
    assert real_set_statistics(files, extractor, (64, 32), cache_dir=cache).cache == "miss"
    assert real_set_statistics(files[:2], extractor, (128, 64), cache_dir=cache).cache == "miss"
    assert real_set_statistics(files[:2], extractor, (128, 64), cache_dir=cache, use_cache=False).cache == "off"
    # a corrupt cache entry is recomputed, not trusted
    for entry in (cache / "fid").glob("*.npz"):
        entry.write_bytes(b"garbage")
    assert real_set_statistics(files, extractor, (128, 64), cache_dir=cache).cache == "miss"


def test_architecture_has_the_tf_quirks():
    model = FIDInceptionV3()
    assert model.Mixed_7c.pool == "max" and model.Mixed_7b.pool == "avg"
    assert all(m.eps == pytest.approx(1e-3) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_fused_batch_norm_gives_the_unfused_output():
    from posetransfer.weights.inception import BasicConv2d

    torch.manual_seed(0)
    layer = BasicConv2d(3, 8, kernel_size=3, padding=1).eval()
    with torch.no_grad():
        layer.bn.weight.uniform_(0.5, 2.0)
        layer.bn.bias.normal_()
        layer.bn.running_mean.normal_()
        layer.bn.running_var.uniform_(0.2, 3.0)
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        expected = layer(x)
        keys = set(layer.state_dict())
        layer.fuse()
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    assert set(layer.state_dict()) == keys  # the fused copy is not part of the weights
