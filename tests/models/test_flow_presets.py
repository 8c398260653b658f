"""The flow-market / flow-deepfashion presets: schema, the paper's settings, the models they build, and both
training stages through ``posetransfer train`` on a tiny synthetic dataset."""
from __future__ import annotations

import json

import pytest
import torch

from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.models.registry import build_discriminator, build_generator

TINY_OVERRIDES = ["model.ngf=4", "model.max_channels=16", "model.flow_ngf=4", "model.flow_max_channels=8",
                  "discriminators.image.ndf=4", "discriminators.image.max_channels=8", "train.batch_size=2",
                  "train.workers=0", "train.log_every=1", "train.image_every=1000", "train.checkpoint_every=1",
                  "loss.perceptual_layers=[relu1_1]", "loss.style_layers=[relu2_2]"]


@pytest.mark.parametrize("preset, batch, layers, scales", [("flow-market", 8, 3, [4]),
                                                           ("flow-deepfashion", 6, 4, [8, 4])])
def test_presets_hold_the_paper_settings(preset, batch, layers, scales):
    cfg = load_config(preset)
    assert cfg["train"]["batch_size"] == batch                      # paper: 8 (Market), 6 (DeepFashion)
    assert cfg["optim"]["betas"] == [0.0, 0.99] and cfg["optim"]["lr"] == 1e-3
    assert cfg["optim"]["decay_start"] == cfg["optim"]["iterations"]   # fixed learning rate
    assert cfg["train"]["stage"] == "full" and "train.stage=flow" in cfg["notes"]
    assert cfg["loss"]["correctness"] > 0 and cfg["loss"]["style"] > 0 and cfg["loss"]["gan"] > 0
    assert list(cfg["discriminators"]) == ["image"]
    disc = dict(cfg["discriminators"]["image"])
    assert disc.pop("name") == "spectral_resnet" and disc.pop("input") == ["image"]   # unconditional D
    d = build_discriminator("spectral_resnet", input_nc=3, **disc)
    assert d.n_layers == layers
    model = dict(cfg["model"])
    g = build_generator(model.pop("name"), **{**model, "ngf": 4, "flow_ngf": 4, "flow_max_channels": 8})
    assert g.flow_scales == scales
    stage1 = load_config(preset, ["train.stage=flow"])
    assert stage1["train"]["stage"] == "flow"


def test_both_stages_train_through_the_cli(tmp_path):
    from posetransfer.data.synth import generate_dataset

    data = generate_dataset(tmp_path / "market", size="market", identities=3, poses=2, seed=0)
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    common = ["train", "--preset", "flow-market", "--data", str(data), "--steps", "1", "--no-progress",
              "--device", "cpu"]
    sets = [arg for item in TINY_OVERRIDES for arg in ("--set", item)]
    assert main(common + ["--out", str(stage1), "--set", "train.stage=flow", "--set", "loss.correctness=20",
                          "--set", "loss.regularization=0.01"] + sets) == 0
    summary = json.loads((stage1 / "summary.json").read_text())
    assert summary["status"] == "completed" and set(summary["final_losses"]) == {"correctness", "regularization"}
    assert main(common + ["--out", str(stage2), "--set", f"train.init={stage1}"] + sets) == 0
    summary = json.loads((stage2 / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert {"l1", "correctness", "gan", "style", "perceptual"} <= set(summary["final_losses"])
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["final_losses"].values())
