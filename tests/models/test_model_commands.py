"""``posetransfer models`` and ``posetransfer summary`` (meta-device layer tables)."""
from __future__ import annotations

import json

from posetransfer.cli import main


def test_models_lists_every_architecture_with_paper_sizes(capsys):
    assert main(["models", "--json"]) == 0
    entries = {(e["name"], e["kind"]): e for e in json.loads(capsys.readouterr().out)}
    for name in ("patn", "apatn", "pona", "resnet"):
        assert (name, "generator") in entries
    patn = entries[("patn", "generator")]
    assert patn["params_deepfashion"] == 41_358_019 and patn["params_market"] == 41_365_763
    assert patn["input_market"].startswith("3×128×64") and patn["input_deepfashion"].startswith("3×256×176")
    assert round(entries[("pona", "generator")]["params_deepfashion"] / 1e6, 2) == 34.33
    assert entries[("patn_resnet", "discriminator (shape)")]["input_market"] == "21×128×64"


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "41.36 M" in out and "patn_resnet" in out


def test_summary_patn(capsys):
    assert main(["summary", "patn"]) == 0
    out = capsys.readouterr().out
    assert "att.8" in out and "PATBlock" in out
    assert "1×3×128×64" in out                          # default size: Market
    assert "total parameters: 41,358,019" in out


def test_summary_with_dataset_and_overrides(capsys):
    assert main(["summary", "apatn", "--dataset", "deepfashion", "n_blocks=1", "--depth", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in summary["rows"]}
    assert rows["att.0.theta"]["output"] == "1×128×64×44"
    assert rows["stream2_down"]["calls"] == 2             # one pose encoder, applied to S_c and S_t
    assert rows["(output)"]["output"] == "1×3×256×176"
    assert summary["config"]["n_blocks"] == 1


def test_summary_discriminator(capsys):
    assert main(["summary", "patn_resnet", "input_nc=6", "output=patch", "--size", "64x32"]) == 0
    out = capsys.readouterr().out
    assert "1×1×16×8" in out


def test_summary_errors_are_one_line(capsys):
    assert main(["summary", "nosuchnet"]) == 2
    assert "nosuchnet" in capsys.readouterr().err
    assert main(["summary", "patn", "n_blocks"]) == 2
    err = capsys.readouterr().err
    assert "key=value" in err and len(err.strip().splitlines()) == 1
    assert main(["summary", "patn", "wings=3"]) == 2
    assert "wings" in capsys.readouterr().err


def test_summary_still_takes_the_deprecated_preset_flag(capsys, caplog):
    """``--preset market|deepfashion`` was the old name of ``--dataset``: same table, one warning line."""
    with caplog.at_level("WARNING"):
        assert main(["summary", "apatn", "--preset", "deepfashion", "n_blocks=1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["dataset"] == "deepfashion"
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
