"""Presets load, validate and build; ``--set`` overrides are typed; unknown keys are named."""
from __future__ import annotations

import pytest
import torch

from posetransfer.config import DISCRIMINATOR_INPUTS, apply_overrides, defaults, list_presets, load_config
from posetransfer.errors import ConfigError

PAPER_PRESETS = ["patn-market", "patn-deepfashion", "apatn-market", "apatn-deepfashion", "pona-market",
                 "pona-deepfashion"]


def test_every_required_preset_exists():
    names = list_presets()
    for name in PAPER_PRESETS + ["demo-synth"]:
        assert name in names


@pytest.mark.parametrize("name", list_presets())
def test_preset_loads_validates_and_builds(name):
    from posetransfer.models.registry import build_discriminator, build_generator

    config = load_config(name)
    assert config["name"] == name
    assert config["notes"].strip() and config["paper"].strip()
    model = dict(config["model"])
    channels = {"image": 3, "source_image": 3, "source_heatmaps": 18, "target_heatmaps": 18}
    with torch.device("meta"):  # checks every option name against the real builders, without allocating
        generator = build_generator(model.pop("name"), **model)
        assert generator.pose_channels == 18
        for spec in config["discriminators"].values():
            spec = dict(spec)
            inputs = spec.pop("input")
            assert set(inputs) <= set(DISCRIMINATOR_INPUTS)
            build_discriminator(spec.pop("name"), input_nc=sum(channels[t] for t in inputs), **spec)


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_optimisation_settings(name):
    config = load_config(name)
    market = name.endswith("market")
    assert config["optim"]["lr"] == 2e-4 and config["optim"]["betas"] == [0.5, 0.999]
    assert (config["optim"]["iterations"], config["optim"]["decay_start"]) == (90000, 60000)
    assert config["loss"]["gan"] == 5.0 and config["loss"]["perceptual_layers"] == ["relu1_2"]
    assert (config["loss"]["l1"], config["loss"]["perceptual"]) == ((10.0, 10.0) if market else (1.0, 1.0))
    assert config["train"]["batch_size"] == (32 if market else 7)
    assert config["dataset"]["size"] == ([128, 64] if market else [256, 176])
    assert config["model"]["dropout"] == 0.5
    assert set(config["discriminators"]) and all(d["input"][0] == "image" for d in config["discriminators"].values())
    # the discrepancies with the official code are documented
    assert "lsgan" in config["notes"].lower() or "average" in config["notes"].lower()


def test_norms_follow_each_paper():
    assert load_config("patn-market")["model"]["norm"] == "batch"          # CVPR'19: BN on Market
    assert load_config("patn-deepfashion")["model"]["norm"] == "instance"
    assert load_config("apatn-market")["model"]["norm"] == "instance"      # TPAMI: IN everywhere
    assert load_config("pona-market")["model"]["norm"] == "batch"
    assert load_config("apatn-market")["model"]["n_blocks"] == 5
    assert load_config("pona-deepfashion")["model"]["n_blocks"] == 3


def test_overrides_are_parsed_as_yaml_and_typed():
    config = load_config("patn-market", ["optim.lr=1e-4", "optim.betas=[0.9, 0.99]", "train.batch_size=8",
                                         "model.ngf=8", "discriminators.shape.ndf=16", "optim.grad_clip=1",
                                         "train.amp=false", "loss.perceptual_layers=[relu1_2, relu2_2]"])
    assert config["optim"]["lr"] == pytest.approx(1e-4) and isinstance(config["optim"]["lr"], float)
    assert config["optim"]["betas"] == [0.9, 0.99]
    assert config["train"]["batch_size"] == 8 and config["model"]["ngf"] == 8
    assert config["discriminators"]["shape"]["ndf"] == 16
    assert config["optim"]["grad_clip"] == 1.0 and config["train"]["amp"] is False
    assert config["loss"]["perceptual_layers"] == ["relu1_2", "relu2_2"]
    removed = load_config("patn-market", ["discriminators.appearance=null"])
    assert list(removed["discriminators"]) == ["shape"]


@pytest.mark.parametrize("override, message", [
    ("optim.learning_rate=1", "optim.learning_rate"),
    ("trian.seed=1", "trian.seed"),
    ("optim.lr.x=1", "optim.lr.x"),
    ("train=3", "train"),
    ("nokey", "key=value"),
])
def test_unknown_override_keys_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config("patn-market", [override])


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=eight", "train.batch_size must be an integer"),
    ("optim.lr=fast", "optim.lr must be a number"),
    ("optim.betas=[0.5]", "optim.betas must have 2 items"),
    ("loss.gan_mode=wgan", "loss.gan_mode must be one of"),
    ("train.amp=yes please", "train.amp must be true or false"),
    ("train.batch_size=0", "train.batch_size must be > 0"),
    ("optim.decay_start=100000", "decay_start"),
    ("loss.perceptual_layers=[conv9]", "unknown VGG layer"),
    ("discriminators.shape.input=[image, depth]", "unknown tensor 'depth'"),
])
def test_wrong_values_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("patn-market", [override])


def test_yaml_file_with_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\noptim: {lr: 1.0e-3, warmup: 10}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml.*optim\.warmup"):
        load_config(path)
    path.write_text("name: mine\noptim: {lr: 1.0e-3}\n")
    config = load_config(path)
    assert config["optim"]["lr"] == 1e-3 and config["optim"]["iterations"] == defaults()["optim"]["iterations"]


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="patn-market"):
        load_config("patn-marke")


def test_overrides_do_not_mutate_the_input():
    base = defaults()
    apply_overrides(base, ["optim.lr=1"])
    assert base["optim"]["lr"] == 2e-4
