"""Official checkpoint conversion (``posetransfer convert``) on synthetic state dicts in the official layout.

The official key sets are written out (``official_layout.py``) from the documented official layouts
(prior_art.md §1.1.3–1.1.4, §1.2; key names confirmed by load errors quoted in Pose-Transfer issues
#12/#47/#82), independently of our modules, so the test fails if our layout drifts from the official one.
"""
from __future__ import annotations

import pytest
import torch

import posetransfer
from posetransfer.cli import main
from posetransfer.modelfile import load_discriminator

from official_layout import no_dropout, official_discriminator_state, official_patn_state, official_pona_state


@pytest.mark.parametrize("norm, preset", [("instance", "deepfashion"), ("batch", "market")])
def test_patn_conversion_round_trip(norm, preset, tmp_path, inputs):
    state = official_patn_state(norm=norm)
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(state, pth)
    out = tmp_path / "patn.safetensors"
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(out), "--dataset", preset]) == 0
    g = posetransfer.load_generator(out, arch="patn")   # strict load inside
    assert g.config["norm"] == norm and g.config["n_blocks"] == 2 and g.config["ngf"] == 8
    ours = g.state_dict()
    for key, value in state.items():
        name = key[len("model."):]
        if name in ours:
            assert torch.equal(ours[name], value), name
        else:  # only the InstanceNorm running statistics of PyTorch 0.3 are dropped
            assert norm == "instance" and name.endswith(("running_mean", "running_var")), name
    image, src, tgt = inputs(preset, batch=1)
    out_img = g(image, src, tgt)
    assert out_img.shape == image.shape and torch.isfinite(out_img).all()


def test_pona_conversion_round_trip(tmp_path, inputs):
    state = official_pona_state()
    pth = tmp_path / "test1_net_netG.pth"
    torch.save(state, pth)
    out = tmp_path / "pona.safetensors"
    assert main(["convert", "--arch", "pona", "--input", str(pth), "--out", str(out)]) == 0
    g = posetransfer.load_generator(out, arch="pona")
    ours = g.state_dict()
    assert set(ours) == {k[len("model."):] for k in state}
    assert all(torch.equal(ours[k[len("model."):]], v) for k, v in state.items())
    image, src, tgt = inputs("deepfashion", batch=1)
    assert g(image, src, tgt).shape == image.shape


def test_discriminators_convert_too(tmp_path):
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(official_patn_state(norm="batch"), pth)
    torch.save(official_discriminator_state(21), tmp_path / "latest_net_netD_PB.pth")
    torch.save(official_discriminator_state(6), tmp_path / "latest_net_netD_PP.pth")
    out = tmp_path / "g.safetensors"
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(out), "--d-sigmoid",
                 "--shape-d", str(tmp_path / "latest_net_netD_PB.pth"),
                 "--appearance-d", str(tmp_path / "latest_net_netD_PP.pth")]) == 0
    shape_d = load_discriminator(tmp_path / "g-shape-discriminator.safetensors", arch="patn_resnet")
    app_d = load_discriminator(tmp_path / "g-appearance-discriminator.safetensors")
    assert shape_d.config["input_nc"] == 21 and app_d.config["input_nc"] == 6
    assert shape_d.config["activation"] == "relu" and shape_d.config["n_blocks"] == 3
    score = shape_d.eval()(torch.randn(1, 21, 32, 16))
    assert score.shape == (1, 32, 8, 4) and score.min() >= 0 and score.max() <= 1


def test_no_dropout_checkpoint_is_reindexed(tmp_path):
    shifted = no_dropout(official_patn_state(norm="batch"))
    pth = tmp_path / "nodrop.pth"
    torch.save(shifted, pth)
    out = tmp_path / "g.safetensors"
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(out)]) == 0
    g = posetransfer.load_generator(out)
    assert g.config["dropout"] == 0.0
    assert torch.equal(g.att[0].conv_block_stream1[6].weight, shifted["model.att.0.conv_block_stream1.5.weight"])


def test_not_a_plain_state_dict_is_one_line_error(tmp_path, capsys):
    pth = tmp_path / "whole_model.pth"
    torch.save({"epoch": 3, "net": {"a": torch.zeros(1)}}, pth)
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "whole_model.pth" in err and "\n" not in err
    assert not (tmp_path / "x.safetensors").exists()


def test_pickled_code_is_refused(tmp_path, capsys):
    pth = tmp_path / "evil.pth"
    torch.save(torch.nn.Linear(2, 2), pth)          # a pickled module, not a state dict
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "evil.pth" in err and len(err.strip().splitlines()) == 1


def test_wrong_architecture_or_preset_is_reported(tmp_path, capsys):
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(official_patn_state(norm="instance"), pth)
    out = str(tmp_path / "x.safetensors")
    assert main(["convert", "--arch", "pona", "--input", str(pth), "--out", out]) == 2
    assert "latest_net_netG.pth" in capsys.readouterr().err
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", out, "--dataset", "market"]) == 2
    assert "instance norm" in capsys.readouterr().err
