"""``posetransfer demo`` end to end with a couple of training steps: the report files and metrics structure
(the quality claim is measured by running the full demo, not here)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from posetransfer.cli import main
from posetransfer.demo import default_steps, verdict


pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_with_two_steps_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--steps", "2", "--identities", "4", "--eval-pairs", "6",
                 "--set", "train.batch_size=2", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / "report.html") in printed and "copy the source" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("model", "copy_source", "untrained"):
        assert set(metrics[key]) == {"ssim", "l1"}
        assert 0.0 <= metrics[key]["l1"] <= 2.0 and -1.0 <= metrics[key]["ssim"] <= 1.0
    assert metrics["pairs"] == 6 and metrics["training"]["steps"] == 2
    assert set(metrics["beats_baselines"]) == {"ssim", "l1"}
    # the verdict: per baseline and metric, and 2 steps are too few to beat copying the source on SSIM
    assert set(metrics["beats"]) == {"copy_source", "untrained"}
    assert all(set(per) == {"ssim", "l1"} for per in metrics["beats"].values())
    assert metrics["beats"]["copy_source"]["ssim"] is False and metrics["passed"] is False
    for base, per in metrics["beats"].items():
        assert per["ssim"] == (metrics["model"]["ssim"] > metrics[base]["ssim"])
        assert per["l1"] == (metrics["model"]["l1"] < metrics[base]["l1"])
    assert metrics["verdict"][0].startswith("the trained PATN does NOT beat copying the source image on SSIM")
    planned = default_steps()
    assert metrics["training"]["planned_steps"] == planned and metrics["training"]["schedule"] == "fixed steps"
    assert metrics["advice"].startswith("too few steps: the model trained 2 steps")
    assert f"sized for {planned} steps" in metrics["advice"] and f"posetransfer demo --out {out}-{planned}" in \
        metrics["advice"]
    lines = printed.strip().splitlines()
    assert metrics["verdict"][0] in lines and metrics["verdict"][1] in lines and metrics["advice"] in lines
    page = (out / "report.html").read_text()
    assert "did not beat every baseline" in page and "too few steps" in page and "does NOT beat" in page
    for name in ("report.html", "samples.png", "generator.safetensors", "data/dataset.json", "run/summary.json"):
        assert (out / name).is_file(), name
    assert "samples.png" in (out / "report.html").read_text()
    from posetransfer.inference import load_generator

    model = load_generator(out / "generator.safetensors")
    assert model.arch == "patn"
    contract = model.input_contract           # the demo's file says what it was trained on
    assert (contract.size, contract.heatmap, contract.sigma) == ((128, 64), "gaussian", 6.0)
    assert contract.provenance == {"trained": str((out / "run").resolve()), "step": 2}
    from posetransfer.io import read_image

    grid = read_image(out / "samples.png")
    assert grid.shape[1] == 5 * (64 + 4)          # source | pose | untrained | trained | target


def test_demo_rejects_bad_options(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "x"), "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "x"), "--minutes", "1", "--steps", "5"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_the_default_schedule_is_the_presets_steps_and_a_full_run_that_loses_says_so():
    """The demo trains the preset's optim.iterations; when even the full schedule loses, the advice does not
    blame the step count."""
    from posetransfer.config import load_config

    assert default_steps() == load_config("demo-synth")["optim"]["iterations"] >= 600
    steps = default_steps()
    metrics = {"model": {"ssim": 0.30, "l1": 0.35}, "copy_source": {"ssim": 0.26, "l1": 0.33},
               "untrained": {"ssim": 0.0, "l1": 0.34},
               "training": {"steps": steps, "planned_steps": steps, "schedule": "fixed steps"},
               "beats": {"copy_source": {"ssim": True, "l1": False}, "untrained": {"ssim": True, "l1": False}}}
    result = verdict(metrics, Path("demo_out"))
    assert result["passed"] is False
    assert result["verdict"][0] == ("the trained PATN does NOT beat copying the source image on L1 "
                                    "(SSIM 0.3000 > 0.2600, L1 0.3500 >= 0.3300)")
    assert "too few" not in result["advice"] and f"--steps {2 * steps} --seed 1" in result["advice"]
    metrics["beats"] = {"copy_source": {"ssim": True, "l1": True}, "untrained": {"ssim": True, "l1": True}}
    metrics["model"]["l1"] = 0.30
    result = verdict(metrics, Path("demo_out"))
    assert result["passed"] is True and result["advice"] is None
    assert result["verdict"] == [
        "the trained PATN beats copying the source image (SSIM 0.3000 > 0.2600, L1 0.3000 < 0.3300)",
        "the trained PATN beats the untrained network (SSIM 0.3000 > 0.0000, L1 0.3000 < 0.3400)"]


def test_time_budget_runs_the_constant_half_then_a_decay_that_ends_on_time(tmp_path, capsys):
    """--minutes: the first session stops on time at the constant lr; the second decays to 0 at its last step."""
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--minutes", "0.1", "--identities", "4", "--eval-pairs", "4",
                 "--set", "train.batch_size=2", "--set", "train.checkpoint_every=1000", "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    import yaml

    optim = yaml.safe_load((out / "run" / "config.yaml").read_text())["optim"]
    summary = json.loads((out / "run" / "summary.json").read_text())
    # the decay starts where the constant-rate session stopped (on time) and ends at the planned last step
    assert 1 <= optim["decay_start"] < optim["iterations"]
    assert summary["start_step"] == optim["decay_start"]
    assert summary["status"] in ("completed", "time-limit")
    assert metrics["training"]["steps"] == summary["steps"] > optim["decay_start"]
    if summary["status"] == "completed":
        assert summary["steps"] == optim["iterations"]
    assert metrics["training"]["schedule"] == "time budget"
    if not metrics["passed"]:
        assert "the --minutes budget fit no more on this machine" in metrics["advice"]
    assert summary["steady_iterations_per_second"] is None or summary["steady_iterations_per_second"] > 0
