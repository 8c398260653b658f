"""Official checkpoint conversion (``posetransfer convert``) on synthetic state dicts in the official layout.

The official key sets are written out here from the documented official layouts (prior_art.md §1.1.3–1.1.4,
§1.2; key names confirmed by load errors quoted in Pose-Transfer issues #12/#47/#82), independently of our
modules, so the test fails if our layout drifts from the official one.
"""
from __future__ import annotations

import pytest
import torch

import posetransfer
from posetransfer.cli import main
from posetransfer.modelfile import load_discriminator


def _conv(state, key, cin, cout, k, bias=True, transposed=False):
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    state[f"{key}.weight"] = torch.randn(shape) * 0.02
    if bias:
        state[f"{key}.bias"] = torch.randn(cout) * 0.02


def _norm(state, key, c, norm):
    """batch: affine + stats (PyTorch 0.3: no num_batches_tracked); instance (PyTorch 0.3): stats only."""
    if norm == "batch":
        state[f"{key}.weight"] = 1 + torch.randn(c) * 0.02
        state[f"{key}.bias"] = torch.randn(c) * 0.02
    state[f"{key}.running_mean"] = torch.randn(c) * 0.1
    state[f"{key}.running_var"] = torch.rand(c) + 0.5


def official_patn_state(ngf=8, n_blocks=2, norm="instance", pose=18):
    s: dict[str, torch.Tensor] = {}
    bias = norm == "instance"
    for name, cin in (("stream1_down", 3), ("stream2_down", 2 * pose)):
        _conv(s, f"{name}.1", cin, ngf, 7, bias); _norm(s, f"{name}.2", ngf, norm)
        _conv(s, f"{name}.4", ngf, 2 * ngf, 3, bias); _norm(s, f"{name}.5", 2 * ngf, norm)
        _conv(s, f"{name}.7", 2 * ngf, 4 * ngf, 3, bias); _norm(s, f"{name}.8", 4 * ngf, norm)
    d = 4 * ngf
    for i in range(n_blocks):
        p = f"att.{i}.conv_block_stream1"
        _conv(s, f"{p}.1", d, d, 3, bias); _norm(s, f"{p}.2", d, norm)
        _conv(s, f"{p}.6", d, d, 3, bias); _norm(s, f"{p}.7", d, norm)
        p, width = f"att.{i}.conv_block_stream2", (2 * d if i > 0 else d)
        _conv(s, f"{p}.1", width, width, 3, bias); _norm(s, f"{p}.2", width, norm)
        _conv(s, f"{p}.6", width, d, 3, bias)
    _conv(s, "stream1_up.0", d, 2 * ngf, 3, bias, transposed=True); _norm(s, "stream1_up.1", 2 * ngf, norm)
    _conv(s, "stream1_up.3", 2 * ngf, ngf, 3, bias, transposed=True); _norm(s, "stream1_up.4", ngf, norm)
    _conv(s, "stream1_up.7", ngf, 3, 7, True)
    return {f"model.{k}": v for k, v in s.items()}


def official_pona_state(ngf=8, n_blocks=2, pose=18):
    """The released DeepFashion PoNA (PyTorch 1.2, instance norm without running stats)."""
    s: dict[str, torch.Tensor] = {}
    for name, cin in (("stream1_down", 3), ("stream2_down", 2 * pose)):
        _conv(s, f"{name}.1", cin, ngf, 7); _conv(s, f"{name}.4", ngf, 2 * ngf, 3)
        _conv(s, f"{name}.7", 2 * ngf, 4 * ngf, 3)
    d = 4 * ngf
    for i in range(n_blocks):
        p = f"att.{i}"
        _conv(s, f"{p}.query_conv", d, d // 8, 1); _conv(s, f"{p}.key_conv", d, d // 8, 1)
        _conv(s, f"{p}.value_conv", d, d, 1)
        s[f"{p}.gamma"] = torch.tensor([0.3])
        for name, cin, cout in (("conv", d, d), ("dconv", 2 * d, 2 * d), ("conv2", d, d), ("dconv2", 2 * d, d)):
            _conv(s, f"{p}.{name}.conv.0", cin, cin, 3); _conv(s, f"{p}.{name}.conv.4", cin, cout, 3)
        _conv(s, f"{p}.att2.query_conv", 2 * d, d // 4, 1); _conv(s, f"{p}.att2.key_conv", 2 * d, d // 4, 1)
        _conv(s, f"{p}.att2.value_conv", 2 * d, 2 * d, 1)
        s[f"{p}.att2.gamma"] = torch.tensor([0.2]); s[f"{p}.att2.beta"] = torch.tensor([0.1])
    _conv(s, "stream1_up.0", d, 2 * ngf, 3, transposed=True); _conv(s, "stream1_up.3", 2 * ngf, ngf, 3, transposed=True)
    _conv(s, "stream1_up.7", ngf, 3, 7)
    return {f"model.{k}": v for k, v in s.items()}


def official_discriminator_state(input_nc, ndf=8, n_blocks=3, norm="batch"):
    s: dict[str, torch.Tensor] = {}
    bias = norm == "instance"
    _conv(s, "model.1", input_nc, ndf, 7, bias); _norm(s, "model.2", ndf, norm)
    _conv(s, "model.4", ndf, 2 * ndf, 3, bias); _norm(s, "model.5", 2 * ndf, norm)
    _conv(s, "model.7", 2 * ndf, 4 * ndf, 3, bias); _norm(s, "model.8", 4 * ndf, norm)
    for i in range(n_blocks):
        p = f"model.{10 + i}.conv_block"
        _conv(s, f"{p}.1", 4 * ndf, 4 * ndf, 3, bias); _norm(s, f"{p}.2", 4 * ndf, norm)
        _conv(s, f"{p}.6", 4 * ndf, 4 * ndf, 3, bias); _norm(s, f"{p}.7", 4 * ndf, norm)
    return s


@pytest.mark.parametrize("norm, preset", [("instance", "deepfashion"), ("batch", "market")])
def test_patn_conversion_round_trip(norm, preset, tmp_path, inputs):
    state = official_patn_state(norm=norm)
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(state, pth)
    out = tmp_path / "patn.safetensors"
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(out), "--preset", preset]) == 0
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
    state = official_patn_state(norm="batch")
    shifted = {}
    for key, value in state.items():  # a --no_dropout model: indices after the dropout are one lower
        parts = key.split(".")
        if "conv_block_stream" in key and int(parts[4]) >= 6:
            parts[4] = str(int(parts[4]) - 1)
        shifted[".".join(parts)] = value
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
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", out, "--preset", "market"]) == 2
    assert "instance norm" in capsys.readouterr().err
