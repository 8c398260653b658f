"""Markdown tables: published rows (cited) beside measured rows (marked, footnoted)."""
from __future__ import annotations

import json

import pytest

from posetransfer.errors import DataError
from posetransfer.metrics.published import LAYOUTS, PATN_TPAMI_TABLE1, STRUCTURE_AWARE_TABLE1
from posetransfer.metrics.tables import read_results, render_table, render_tables


def fake_results(protocol: str, kind: str, metrics: dict, **extra) -> dict:
    return {
        "label": extra.get("label", "my-run"),
        "protocol": {"name": protocol},
        "dataset": {"kind": kind, "resolution": [128, 64] if kind == "market" else [256, 176]},
        "generated": {"dir": "/x/out", "matched": 12000, "missing": extra.get("missing", 0), "resized": 0},
        "metrics": metrics,
        "weights": extra.get("weights", {}),
        "unavailable": extra.get("unavailable", {}),
    }


def rows_of(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| Model")]


def test_every_layout_has_consistent_published_rows():
    for table in LAYOUTS.values():
        for method, values in table.rows:
            assert len(values) == len(table.columns), method
    assert PATN_TPAMI_TABLE1.value("PATN", "market", "ssim") == "0.311"
    assert PATN_TPAMI_TABLE1.value("APATN", "fashion", "ssim") == "0.780"
    assert STRUCTURE_AWARE_TABLE1.value("DIST / GFLA", "market", "fid") == "21.539"


def test_measured_market_row_fills_only_market_columns_and_is_marked():
    result = fake_results("patn", "market", {"ssim": 0.30123, "is": None, "mask_ssim": 0.8, "mask_is": None,
                                             "ds": None, "pckh": 0.9, "l1": 0.2},
                          unavailable={"is": "needs classifier weights", "ds": "no detector weights"},
                          weights={"pckh": {"network": "BlazePose", "kind": "package"}}, missing=3)
    text = render_table([result])
    rows = rows_of(text)
    published = [r for r in rows if r[1] == "published [1]"]
    assert [r[0] for r in published] == [m for m, _ in PATN_TPAMI_TABLE1.rows]
    measured = [r for r in rows if "measured" in r[1]]
    assert len(measured) == 1
    cells = dict(zip([f"{k}:{m}" for k, m in PATN_TPAMI_TABLE1.columns], measured[0][2:]))
    assert cells["market:ssim"] == "0.301" and cells["market:pckh"] == "0.900"
    assert cells["market:is"] == "n/a" and cells["market:ds"] == "n/a"
    assert cells["fashion:ssim"] == "–"
    assert measured[0][0] == "ours: my-run"
    assert "is n/a: needs classifier weights" in text and "3 test pairs missing" in text
    assert "pckh: BlazePose [package]" in text
    assert "Zhu et al." in text and "Table 1" in text


def test_layout_follows_the_protocol_and_groups_mixed_results(tmp_path):
    gfla = fake_results("gfla", "fashion", {"fid": 12.5, "lpips": 0.25, "ssim": 0.7, "psnr": 17.0})
    patn = fake_results("patn", "market", {"ssim": 0.3})
    assert "Structure-aware" in render_tables([gfla]).splitlines()[0]
    both = render_tables([gfla, patn])
    assert "## structure-aware" in both and "## patn" in both
    everything = render_tables([])
    assert all(f"## {name}" in everything for name in LAYOUTS)
    with pytest.raises(DataError, match="unknown table layout"):
        render_table([gfla], "pg2")


def test_results_files_are_validated(tmp_path):
    good = tmp_path / "r.json"
    good.write_text(json.dumps(fake_results("patn", "market", {"ssim": 0.3})))
    assert read_results([good])[0]["metrics"]["ssim"] == 0.3
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        read_results([tmp_path / "bad.json"])
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="other.json: not a posetransfer eval results file"):
        read_results([tmp_path / "other.json"])
    with pytest.raises(DataError, match="gone.json: results file not found"):
        read_results([tmp_path / "gone.json"])


def test_lpips_from_the_shift_tolerant_fallback_is_flagged():
    fallback = {"network": "ST-LPIPS alex (shift-tolerant)", "kind": "package"}
    standard = {"network": "LPIPS v0.1 alex", "kind": "hub-cache"}
    results = [fake_results("gfla", "market", {"lpips": 0.25}, label="offline", weights={"lpips": fallback}),
               fake_results("gfla", "market", {"lpips": 0.26}, label="online", weights={"lpips": standard})]
    text = render_table(results)
    rows = {r[0]: r for r in rows_of(text)}
    assert "0.2500†" in rows["ours: offline"] and "0.2600" in rows["ours: online"]
    assert "0.2600†" not in rows["ours: online"]
    assert "† computed with the offline shift-tolerant LPIPS" in text


def test_st_lpips_never_fills_an_lpips_column_but_is_listed_in_the_footnote():
    st = {"network": "ST-LPIPS alex (shift-tolerant)", "kind": "package"}
    offline = fake_results("gfla", "market", {"lpips": None, "st_lpips": 0.23456, "mask_st_lpips": 0.1},
                           label="offline", weights={"st_lpips": st, "mask_st_lpips": st},
                           unavailable={"lpips": "LPIPS v0.1 needs torchvision's AlexNet"})
    text = render_table([offline])
    cells = dict(zip([f"{k}:{m}" for k, m in STRUCTURE_AWARE_TABLE1.columns], rows_of(text)[-1][2:]))
    assert cells["market:lpips"] == "n/a" and cells["market:mask_lpips"] == "–"
    assert "0.2346" not in rows_of(text)[-1]
    assert "st_lpips 0.2346 (shift-tolerant LPIPS, no published counterpart)" in text
    assert "lpips n/a: LPIPS v0.1 needs torchvision's AlexNet" in text


def test_fid_of_another_kind_than_the_published_column_is_marked():
    tf = fake_results("gfla", "fashion", {"fid": 12.5}, label="tf")
    tf["settings"] = {"fid": {"kind": "tf"}}
    gfla = fake_results("gfla", "fashion", {"fid": 9.5}, label="gfla")
    gfla["settings"] = {"fid": {"kind": "gfla"}}
    legacy = fake_results("gfla", "fashion", {"fid": 11.0}, label="legacy")  # written before FID kinds: TF-FID
    text = render_table([tf, gfla, legacy])
    rows = {r[0]: r for r in rows_of(text)}
    assert "12.500‡" in rows["ours: tf"] and "11.000‡" in rows["ours: legacy"]
    assert "9.500" in rows["ours: gfla"] and "9.500‡" not in rows["ours: gfla"]
    assert "‡ another FID network than the published column's (gfla" in text
    assert "FID kind tf" in text and "FID kind gfla" in text
    assert "‡" not in render_table([gfla])
    assert STRUCTURE_AWARE_TABLE1.fid_kind == "gfla"
