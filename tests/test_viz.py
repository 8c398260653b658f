"""Figures: the attention figure (papers' Fig. 5), the 5-panel test strip, colour map, grids."""
from __future__ import annotations

import numpy as np
import torch

from posetransfer import viz


def test_colormap_is_fixed_scale_and_monotonic_in_brightness():
    values = np.linspace(0, 1, 11)[None, :]
    rgb = viz.colormap(values)[0].astype(int)
    assert rgb.shape == (11, 3)
    brightness = rgb.sum(axis=1)
    assert brightness[-1] > brightness[0] + 200
    assert (viz.colormap(np.array([[2.0]])) == viz.colormap(np.array([[1.0]]))).all()  # clipped, not rescaled


def test_attention_figure_has_one_panel_per_block_and_shows_mask_values():
    size = (128, 64)
    source = np.zeros((*size, 3), dtype=np.uint8)
    output = np.full((*size, 3), 200, dtype=np.uint8)
    pose = viz.pose_image(np.full((18, 2), -1), size)
    low, high = torch.zeros(1, 4, 32, 16), torch.ones(1, 4, 32, 16)
    fig = viz.attention_figure(source, pose, [low, high, low], output, scale=2, labels=False)
    width = 2 * 64
    assert fig.shape == (256, 6 * width + 5 * 2, 3)  # source, pose, 3 masks, output
    block1 = fig[:, 2 * (width + 2):2 * (width + 2) + width]
    block2 = fig[:, 3 * (width + 2):3 * (width + 2) + width]
    assert block2.astype(int).sum() > block1.astype(int).sum()  # mask 1.0 brighter than 0.0
    labelled = viz.attention_figure(source, pose, [low], output, scale=1)
    assert labelled.shape[0] > 128


def test_test_strip_layout_matches_the_official_vis_images():
    size = (128, 64)
    rng = np.random.default_rng(0)
    src, tgt, gen = (rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(3))
    kp = np.full((18, 2), -1)
    kp[1] = (30, 32)
    kp[2] = (30, 20)
    strip = viz.test_strip(src, kp, tgt, kp, gen)
    assert strip.shape == (128, 5 * 64, 3)
    assert (strip[:, :64] == src).all() and (strip[:, 128:192] == tgt).all() and (strip[:, 256:] == gen).all()
    assert strip[:, 64:128].any() and (strip[:, 64:128] == viz.pose_image(kp, size)).all()


def test_grid_and_to_uint8_round_trip():
    images = [np.full((4, 3, 3), i * 40, dtype=np.uint8) for i in range(5)]
    g = viz.grid(images, ncols=2, gap=1)
    assert g.shape == (3 * 4 + 2, 2 * 3 + 1, 3)
    t = torch.linspace(-1, 1, 3 * 4 * 4).reshape(3, 4, 4)
    u = viz.to_uint8(t)
    assert u.dtype == np.uint8 and u.shape == (4, 4, 3) and u.min() == 0 and u.max() == 255
    overlay = viz.skeleton_overlay(np.full((128, 64, 3), 200, np.uint8), np.array([[20, 32]] * 18))
    assert overlay.shape == (128, 64, 3)
    assert viz.draw_skeleton  # the skeleton drawing itself is tested with the keypoints tests
