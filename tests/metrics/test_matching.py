"""Matching generated files to test pairs by name; strips; protocol selection."""
from __future__ import annotations

import numpy as np
import pytest

from posetransfer.errors import ConfigError, DataError
from posetransfer.io import save_image
from posetransfer.metrics.matching import GeneratedFile, load_generated, match_generated, parse_name
from posetransfer.metrics.protocols import get_protocol


def test_both_namings_parse():
    assert parse_name("a.jpg___b.jpg.png") == ("a.jpg", "b.jpg", "single")
    assert parse_name("a.jpg___b.jpg_vis.jpg") == ("a.jpg", "b.jpg", "strip")
    assert parse_name("a.jpg___b.jpg_vis.png") == ("a.jpg", "b.jpg", "strip")
    assert parse_name("a.jpg_2_b_vis.png") is None          # GFLA naming is not ours
    assert parse_name("notes.txt") is None
    assert parse_name("a___b___c.png") is None


def test_missing_extra_and_duplicate_files_are_reported(tmp_path):
    pixel = np.zeros((8, 4, 3), np.uint8)
    save_image(tmp_path / "a.jpg___b.jpg.png", pixel)
    save_image(tmp_path / "b.jpg___a.jpg_vis.jpg", np.zeros((8, 20, 3), np.uint8))
    save_image(tmp_path / "b.jpg___a.jpg.png", pixel)              # both layouts: the single image wins
    save_image(tmp_path / "a.jpg___zzz.jpg.png", pixel)            # not a test pair
    (tmp_path / "readme.txt").write_text("x")
    result = match_generated(tmp_path, [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg"), ("c.jpg", "a.jpg")])
    assert [(m.source, m.target, m.layout) for m in result.matched] == [("a.jpg", "b.jpg", "single"),
                                                                       ("b.jpg", "a.jpg", "single")]
    assert result.missing == [("c.jpg", "a.jpg")]
    assert sorted(result.extra) == ["a.jpg___zzz.jpg.png", "readme.txt"]
    assert result.counts()["both_layouts_present"] == 1


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nope: generated image folder not found"):
        match_generated(tmp_path / "nope", [])


def test_strip_is_cut_into_five_panels_last_is_generated(tmp_path):
    panels = [np.full((128, 64, 3), 40 * i, np.uint8) for i in range(5)]
    path = tmp_path / "a.jpg___b.jpg_vis.png"
    save_image(path, np.concatenate(panels, axis=1))
    gen, target = load_generated(GeneratedFile(path, "a.jpg", "b.jpg", "strip"))
    assert gen.shape == (128, 64, 3) and int(gen.mean()) == 160
    assert int(target.mean()) == 80
    save_image(tmp_path / "bad___c_vis.png", np.zeros((128, 322, 3), np.uint8))
    with pytest.raises(DataError, match="bad___c_vis.png: strip is 322 px wide"):
        load_generated(GeneratedFile(tmp_path / "bad___c_vis.png", "bad", "c", "strip"))


def test_protocols_select_metrics_and_can_be_overridden():
    patn = get_protocol("patn")
    assert patn.metrics_for("market") == ("ssim", "is", "mask_ssim", "mask_is", "ds", "pckh", "l1")
    assert patn.metrics_for("fashion") == ("ssim", "is", "ds", "pckh") and patn.fashion_pad == 40
    assert patn.resize == "reject"
    custom = get_protocol("gfla", metrics=["ssim", "fid"], resize="reject", inception_preprocess="pytorch-fid")
    assert custom.metrics_for("fashion") == ("ssim", "fid")
    assert (custom.resize, custom.inception_preprocess) == ("reject", "pytorch-fid")
    assert get_protocol("structure_aware").name == "structure-aware"
    with pytest.raises(ConfigError, match="unknown evaluation protocol 'pg2'"):
        get_protocol("pg2")
    with pytest.raises(ConfigError, match="unknown metric 'ssmi'"):
        get_protocol("patn", metrics=["ssmi"])
