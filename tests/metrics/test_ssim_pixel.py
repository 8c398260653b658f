"""SSIM (both conventions), mask-SSIM, L1 and PSNR on real photo crops, checked against scikit-image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from posetransfer.data import keypoints as K
from posetransfer.metrics.pixel import PSNR_CAP_DB, l1, psnr
from posetransfer.metrics.ssim import add_white_border, ssim_gfla, ssim_patn


def crop(y: int, x: int, size=(128, 64)) -> np.ndarray:
    """A 128×64 crop of the astronaut photo, downscaled 2× from a 256×128 window (real image statistics)."""
    window = data.astronaut()[y:y + 2 * size[0], x:x + 2 * size[1]]
    return np.asarray(Image.fromarray(window).resize((size[1], size[0]), Image.BICUBIC))


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ref() -> np.ndarray:
    return crop(20, 150)


def test_ssim_patn_equals_scikit_image_with_the_published_parameters(ref):
    for sigma in (5, 20, 60):
        gen = noisy(ref, sigma)
        expected = structural_similarity(ref, gen, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         channel_axis=2, data_range=float(gen.max()) - float(gen.min()))
        assert ssim_patn(gen, ref) == pytest.approx(expected, abs=1e-12)


def test_ssim_of_an_image_with_itself_is_one_and_falls_with_noise(ref):
    assert ssim_patn(ref, ref) == pytest.approx(1.0)
    assert ssim_gfla(ref, ref) == pytest.approx(1.0)
    patn = [ssim_patn(noisy(ref, s), ref) for s in (5, 20, 60)]
    gfla = [ssim_gfla(noisy(ref, s), ref) for s in (5, 20, 60)]
    assert patn[0] > patn[1] > patn[2]
    assert gfla[0] > gfla[1] > gfla[2]
    other = crop(200, 300)
    assert ssim_patn(other, ref) < patn[0]


def test_ssim_gfla_equals_scikit_image_window_51_on_unit_floats(ref):
    gen = noisy(ref, 20)
    expected = structural_similarity(ref.astype(np.float32) / 255, gen.astype(np.float32) / 255, data_range=1.0,
                                     win_size=51, channel_axis=2)
    assert ssim_gfla(gen, ref) == pytest.approx(expected, abs=1e-9)
    # a 40-px-wide image cannot hold a 51 window: the largest odd window that fits (39) is used
    small_ref, small_gen = ref[:, :40], gen[:, :40]
    expected_small = structural_similarity(small_ref / 255.0, small_gen / 255.0, data_range=1.0, win_size=39,
                                           channel_axis=2)
    assert ssim_gfla(small_gen, small_ref) == pytest.approx(expected_small, abs=1e-6)


def test_fashion_white_padding_matches_padding_by_hand_and_raises_ssim():
    ref = crop(0, 100, size=(256, 176))  # a DeepFashion-sized 256×176 crop
    gen = noisy(ref, 30)
    padded = ssim_patn(gen, ref, pad_white=40)
    by_hand_gen = np.concatenate([np.full((ref.shape[0], 40, 3), 255, np.uint8), gen,
                                  np.full((ref.shape[0], 40, 3), 255, np.uint8)], axis=1)
    by_hand_ref = add_white_border(ref, 40)
    assert by_hand_ref.shape[1] == ref.shape[1] + 80
    expected = structural_similarity(by_hand_ref, by_hand_gen, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=2,
                                     data_range=float(by_hand_gen.max()) - float(by_hand_gen.min()))
    assert padded == pytest.approx(expected, abs=1e-12)
    assert padded > ssim_patn(gen, ref)  # the identical white borders inflate the score (GFLA issue #42)


def stick_keypoints() -> np.ndarray:
    return np.array([[16, 32], [28, 32], [28, 22], [44, 18], [60, 16], [28, 42], [44, 46], [60, 48], [64, 26],
                     [86, 26], [110, 26], [64, 38], [86, 38], [110, 38], [13, 29], [13, 35], [15, 26], [15, 38]])


def test_mask_ssim_equals_ssim_of_masked_images_and_ignores_the_background(ref):
    mask = K.pose_mask(stick_keypoints(), ref.shape[:2])
    gen = noisy(ref, 20)
    expected = ssim_patn(gen * mask[..., None], ref * mask[..., None])
    assert ssim_patn(gen, ref, mask=mask) == pytest.approx(expected, abs=1e-12)
    # change only the background of the generated image: mask-SSIM does not move, plain SSIM does
    other_background = np.where(mask[..., None], gen, crop(200, 300))
    assert ssim_patn(other_background, ref, mask=mask) == pytest.approx(ssim_patn(gen, ref, mask=mask))
    assert ssim_patn(other_background, ref) != pytest.approx(ssim_patn(gen, ref))


def test_constant_generated_image_gives_a_finite_ssim(ref):
    flat = np.full_like(ref, 128)
    value = ssim_patn(flat, ref)
    assert np.isfinite(value) and value < 0.5


def test_psnr_equals_scikit_image_and_is_capped_for_identical_images(ref):
    for sigma in (5, 20, 60):
        gen = noisy(ref, sigma)
        expected = peak_signal_noise_ratio(ref / 255.0, gen / 255.0, data_range=1.0)
        assert psnr(gen, ref) == pytest.approx(expected, abs=1e-9)
    assert psnr(ref, ref) == PSNR_CAP_DB
    assert psnr(noisy(ref, 5), ref) > psnr(noisy(ref, 20), ref) > psnr(noisy(ref, 60), ref)


def test_l1_is_patns_mean_absolute_difference_in_signed_units(ref):
    darker = (ref.astype(np.int16) - 51).clip(0, 255).astype(np.uint8)
    expected = np.mean(np.abs(ref.astype(float) - darker.astype(float))) * 2 / 255
    assert l1(darker, ref) == pytest.approx(expected)
    assert l1(ref, ref) == 0.0
    bright = np.full((4, 4, 3), 255, np.uint8)
    black = np.zeros((4, 4, 3), np.uint8)
    assert l1(black, bright) == pytest.approx(2.0)  # the full [-1, 1] range


def test_mismatched_sizes_are_refused(ref):
    with pytest.raises(ValueError, match="one size"):
        ssim_patn(ref[:, :32], ref)
    with pytest.raises(ValueError, match="one size"):
        psnr(ref[:, :32], ref)


def gfla_compare_l1(img_true: np.ndarray, img_test: np.ndarray) -> float:
    """GFLA ``script/metrics.py``: both images read as float32 / 255, then the mean absolute difference."""
    a = img_true.astype(np.float32) / 255.0
    b = img_test.astype(np.float32) / 255.0
    return float(np.mean(np.abs(a - b)))


def test_gfla_l1_is_compare_l1_on_unit_images_and_half_of_patns(ref):
    for sigma in (5, 30):
        gen = noisy(ref, sigma, seed=3)
        assert l1(gen, ref, value_range="[0,1]") == pytest.approx(gfla_compare_l1(ref, gen), rel=1e-6)
        assert l1(gen, ref) == pytest.approx(2 * l1(gen, ref, value_range="[0,1]"), rel=1e-12)
    with pytest.raises(ValueError, match="unknown L1 range"):
        l1(ref, ref, value_range="[0,255]")


def pona_psnr_y(original_file, encoded_file) -> float:
    """PoNA ``tool/Psnr.py`` as its ``__main__`` runs it: PIL ``convert('YCbCr')`` of both files, the Y values of
    ``getdata()``, the summed squared error over the pixel count, ``-10 log10(mse / 255²)``."""
    def pixels(path):  # getdata() in the script; Pillow 12 renames it get_flattened_data()
        image = Image.open(path).convert("YCbCr")
        return getattr(image, "get_flattened_data", image.getdata)()

    y1 = [p[0] for p in pixels(original_file)]
    y2 = [p[0] for p in pixels(encoded_file)]
    error = sum((a - b) * (a - b) for a, b in zip(y1, y2))
    mse = float(error) / float(len(y1))
    return float(-10.0 * np.log10(mse / (255 * 255)))


def test_pona_psnr_is_the_y_channel_of_pils_ycbcr_with_max_255(ref, tmp_path):
    from posetransfer.metrics.pixel import luma, psnr_of_kind, psnr_y

    for sigma in (4, 25):
        gen = noisy(ref, sigma, seed=5)
        Image.fromarray(ref).save(tmp_path / "original.png")
        Image.fromarray(gen).save(tmp_path / "encoded.png")
        expected = pona_psnr_y(tmp_path / "original.png", tmp_path / "encoded.png")
        assert psnr_y(gen, ref) == pytest.approx(expected, abs=1e-9)
        assert psnr_of_kind(gen, ref, "y") == psnr_y(gen, ref)
        assert psnr_y(gen, ref) != pytest.approx(psnr(gen, ref), abs=0.05)  # another convention than GFLA's RGB
    # PIL's luma is the JPEG/BT.601 weighting, rounded (within one level of the float formula)
    weighted = ref.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma(ref).astype(np.float64) - weighted).max() <= 1.0
    assert psnr_y(ref, ref) == PSNR_CAP_DB  # the script prints 0 here; a perfect image must not lower the mean
    with pytest.raises(ValueError, match="unknown PSNR kind"):
        psnr_of_kind(ref, ref, "cb")
