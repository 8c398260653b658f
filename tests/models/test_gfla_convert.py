"""``posetransfer convert --arch gfla``: a GFLA generator and discriminator saved by GFLA's own code convert,
load strictly and give GFLA's outputs (tests/fixtures/gfla, see its README); bad files are one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import posetransfer
from posetransfer.cli import main
from posetransfer.data.keypoints import heatmaps
from posetransfer.errors import CheckpointError
from posetransfer.io import sha256_file
from posetransfer.models import gfla_convert
from posetransfer.models.official import read_official_state_dict
from posetransfer.modelfile import load_discriminator

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gfla"


def fixture_inputs():
    meta = json.loads((FIXTURE / "inputs.json").read_text())
    size = tuple(meta["size"])
    image = torch.from_numpy(np.load(FIXTURE / "source_image.npy")).permute(2, 0, 1)[None].float() / 127.5 - 1
    maps = [torch.from_numpy(heatmaps(np.array(meta["keypoints"][role]), size, meta["sigma"]))[None]
            for role in ("source", "target")]
    return image, maps[0], maps[1]


def convert(tmp_path, *extra):
    out = tmp_path / "gfla.safetensors"
    code = main(["convert", "--arch", "gfla", "--input", str(FIXTURE / "latest_net_G.pth"), "--out", str(out),
                 *extra])
    return code, out


def test_converted_fixture_gives_gflas_own_outputs(tmp_path, capsys):
    code, out = convert(tmp_path, "--discriminator", str(FIXTURE / "latest_net_D.pth"))
    assert code == 0
    printed = capsys.readouterr().out
    assert "gfla generator, 134,571 parameters" in printed and "spectral_resnet, 3 layers" in printed
    model = posetransfer.load_generator(out)
    assert model.arch == "gfla" and model.config["attn_layers"] == [2, 3] and model.config["kernel_sizes"] == [5, 3]
    expected = np.load(FIXTURE / "expected.npz")
    with torch.no_grad():
        result = model(*fixture_inputs(), return_extras=True)
    assert float(np.abs(result.image.numpy() - expected["image"]).max()) < 1e-4
    assert float(np.std(expected["image"])) > 0.1                    # not a trivially flat image
    for got, name in zip(result.flows, ("flow_8", "flow_4")):
        assert float(np.abs(got.numpy() - expected[name]).max()) < 1e-4
    for got, name in zip(result.visibility, ("mask_8", "mask_4")):
        assert float(np.abs(got.numpy() - expected[name]).max()) < 1e-5
    d = load_discriminator(tmp_path / "gfla-image-discriminator.safetensors").eval()
    with torch.no_grad():
        score = d(fixture_inputs()[0])
    assert float(np.abs(score.numpy() - expected["discriminator"]).max()) < 1e-5


def test_preset_is_checked_and_the_input_contract_recorded(tmp_path, capsys):
    code, out = convert(tmp_path, "--dataset", "deepfashion")     # same attention layout as the released one
    assert code == 0
    model = posetransfer.load_generator(out)
    contract = model.input_contract
    assert "input_contract" not in model.config                  # one representation: the file's contract
    assert contract.size == (256, 256) and contract.data_size == (256, 176) and contract.frame == (256, 176)
    assert contract.heatmap == "gaussian" and contract.sigma == 6.0 and contract.kind == "fashion"
    assert contract.keypoint_rounding == "truncate" and contract.image_resize == "bilinear"
    assert contract.provenance["converted"] == "latest_net_G.pth"
    assert contract.provenance["sha256"] == sha256_file(FIXTURE / "latest_net_G.pth")
    assert "256x256 images" in capsys.readouterr().out
    code, _ = convert(tmp_path, "--dataset", "market")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "1/8 kernel 3, 1/4 kernel 5" in err and "released market model has 1/4 kernel 3" in err


def test_a_duplicate_that_differs_and_foreign_files_are_one_line_errors(tmp_path, capsys):
    state = read_official_state_dict(FIXTURE / "latest_net_G.pth")
    broken = dict(state)
    key = next(k for k in state if k.endswith(".conv1.weight"))
    broken[key] = state[key] + 1
    with pytest.raises(CheckpointError, match="differs from its twin"):
        gfla_convert.convert_generator_state(broken, "broken.pth")
    missing = {k: v for k, v in state.items() if not k.startswith("target.attn")}
    with pytest.raises(CheckpointError, match="no local-attention layer"):
        gfla_convert.convert_generator_state(missing, "missing.pth")
    cut = {k: v for k, v in state.items() if k != "target.decoder1.1.shortcut.0.bias"}
    with pytest.raises(CheckpointError, match="keys do not match"):
        gfla_convert.convert_generator_state(cut, "cut.pth")
    d_state = read_official_state_dict(FIXTURE / "latest_net_D.pth")
    torch.save(d_state, tmp_path / "d_as_g.pth")
    code = main(["convert", "--arch", "gfla", "--input", str(tmp_path / "d_as_g.pth"), "--out",
                 str(tmp_path / "x.safetensors")])
    assert code == 2 and "not a GFLA PoseGenerator" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_a_pytorch_1_0_discriminator_file_without_weight_v_converts(tmp_path):
    """PyTorch 1.0 saved spectral norm as weight_orig, weight_u and the normalised weight (no weight_v)."""
    state = read_official_state_dict(FIXTURE / "latest_net_D.pth")
    old = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            continue
        old[key] = value
        if key.endswith(".weight_orig"):
            base = key[: -len("_orig")]
            w = value.reshape(value.shape[0], -1)
            sigma = state[base + "_u"] @ w @ state[base + "_v"]
            old[base] = value / sigma
    d_new = gfla_convert.convert_discriminator_state(state, "new.pth").eval()
    d_old = gfla_convert.convert_discriminator_state(old, "old.pth").eval()
    x = fixture_inputs()[0]
    with torch.no_grad():
        torch.testing.assert_close(d_old(x), d_new(x), rtol=1e-4, atol=1e-6)
    with pytest.raises(CheckpointError, match="4"):
        gfla_convert.convert_discriminator_state(state, "d.pth", dataset="deepfashion")
