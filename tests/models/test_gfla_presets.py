"""The gfla-market / gfla-deepfashion presets: GFLA's option values, and both training stages through
``posetransfer train`` on the synthetic set, resumed bit for bit."""
from __future__ import annotations

import json

import pytest
import torch

from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.models.registry import build_discriminator, build_generator
from posetransfer.inference import load_generator

TINY_OVERRIDES = ["model.ngf=4", "model.max_channels=16", "model.flow_ngf=4", "model.flow_max_channels=8",
                  "discriminators.image.ndf=4", "discriminators.image.max_channels=8", "train.batch_size=2",
                  "train.workers=0", "train.log_every=1", "train.image_every=1000", "train.checkpoint_every=1",
                  "train.keep_last=5", "loss.perceptual_layers=[relu1_1]", "loss.style_layers=[relu2_2]"]


@pytest.mark.parametrize("preset, layers, attn", [("gfla-market", 3, [2]), ("gfla-deepfashion", 4, [2, 3])])
def test_presets_hold_gflas_options(preset, layers, attn):
    cfg = load_config(preset)
    assert cfg["optim"]["lr"] == 1e-4 and cfg["optim"]["betas"] == [0.0, 0.999] and cfg["optim"]["d_lr_ratio"] == 0.1
    assert cfg["optim"]["decay_start"] == cfg["optim"]["iterations"] == 5_000_000
    loss = cfg["loss"]
    assert (loss["l1"], loss["correctness"], loss["gan"], loss["perceptual"], loss["style"],
            loss["regularization"]) == (5.0, 5.0, 2.0, 0.5, 500.0, 0.0025)
    assert loss["gan_mode"] == "lsgan" and loss["gan_form"] == "average" and cfg["train"]["batch_size"] == 8
    assert loss["perceptual_layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert loss["style_layers"] == ["relu2_2", "relu3_4", "relu4_4", "relu5_2"]
    disc = dict(cfg["discriminators"]["image"])
    assert disc.pop("name") == "spectral_resnet" and disc.pop("input") == ["image"]
    assert build_discriminator("spectral_resnet", input_nc=3, **disc).n_layers == layers
    model = dict(cfg["model"])
    g = build_generator(model.pop("name"), **model, ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)
    assert g.arch == "gfla" and g.config["attn_layers"] == attn
    assert "train.stage=flow" in cfg["notes"] and "loss.correctness=20" in cfg["notes"]


def test_both_stages_train_and_resume_bit_for_bit_through_the_cli(tmp_path):
    from posetransfer.data.synth import generate_dataset

    data = generate_dataset(tmp_path / "market", size="market", identities=3, poses=2, seed=0)
    sets = [arg for item in TINY_OVERRIDES for arg in ("--set", item)]
    common = ["train", "--preset", "gfla-market", "--data", str(data), "--no-progress", "--device", "cpu"] + sets
    stage1 = tmp_path / "stage1"
    assert main(common + ["--out", str(stage1), "--steps", "2", "--set", "train.stage=flow",
                          "--set", "loss.correctness=20", "--set", "loss.regularization=0.01"]) == 0
    summary = json.loads((stage1 / "summary.json").read_text())
    assert summary["status"] == "completed" and set(summary["final_losses"]) == {"correctness", "regularization"}

    init = ["--set", f"train.init={stage1}"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(common + init + ["--out", str(straight), "--steps", "3"]) == 0
    assert main(common + init + ["--out", str(split), "--steps", "2"]) == 0
    assert main(["train", "--out", str(split), "--resume", "--steps", "3", "--no-progress"]) == 0
    summary = json.loads((split / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["start_step"] == 2 and summary["steps"] == 3
    assert {"l1", "correctness", "regularization", "gan", "style", "perceptual", "D"} <= set(summary["final_losses"])
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["final_losses"].values())
    a, b = (load_generator(run).state_dict() for run in (straight, split))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # stage 2 started from stage 1: the flow net moved in stage 1 and the image nets did not
    s1 = load_generator(stage1).state_dict()
    torch.manual_seed(0)                          # the trainer builds G right after seeding with train.seed
    fresh = build_generator("gfla", dataset="market", ngf=4, max_channels=16, flow_ngf=4,
                            flow_max_channels=8).state_dict()
    changed = {k for k in fresh if not torch.equal(fresh[k], s1[k])}
    assert changed and all(k.startswith("flow_net.") for k in changed)
