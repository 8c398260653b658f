"""The part-flow model on GFLA's parts: its flow nets are GFLA's PoseFlowNet (a converted GFLA generator
initialises them through ``train.init_flow``), the warp's padding is an option, and the stage-1 correctness
loss samples each part's masked source image."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetransfer.cli import main
from posetransfer.errors import CheckpointError, ConfigError, ModelError
from posetransfer.models import flow_losses
from posetransfer.models.flow import warp
from posetransfer.models.gfla import PoseFlowNet
from posetransfer.models.registry import build_generator
from posetransfer.modelfile import read_generator_file, save_generator
from posetransfer.inference import load_generator

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gfla"
# the fixture GFLA's flow net: ngf 4, cap 8, 5 layers, outputs at 1/8 and 1/4
FLOW_TINY = dict(ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)


def test_part_flow_nets_are_gflas_flow_net_class_with_hidden_equal_to_output_width():
    g = build_generator("flow", dataset="deepfashion")
    for net in g.flow_nets.values():
        assert type(net) is PoseFlowNet
        for i in range(net.decoder_layer):
            block = getattr(net, f"decoder{i}")
            assert block.model[2].out_channels == block.model[5].out_channels    # GFLA: hidden = output width


def converted_fixture(tmp_path) -> Path:
    out = tmp_path / "gfla.safetensors"
    assert main(["convert", "--arch", "gfla", "--input", str(FIXTURE / "latest_net_G.pth"), "--out", str(out)]) == 0
    return out


def test_a_gfla_flow_net_initialises_every_part_through_train_init_flow(tmp_path):
    from posetransfer.data.synth import generate_dataset

    gfla = converted_fixture(tmp_path)
    state = read_generator_file(gfla).state
    data = generate_dataset(tmp_path / "fashion", size="fashion", identities=3, poses=2, seed=0)
    run = tmp_path / "run"
    sets = ["model.ngf=4", "model.max_channels=16", "model.flow_ngf=4", "model.flow_max_channels=8",
            "train.batch_size=2", "train.workers=0", "train.stage=flow", "loss.correctness=20",
            "loss.regularization=0.01", "optim.lr=1e-12", f"train.init_flow={gfla}"]
    assert main(["train", "--preset", "flow-deepfashion", "--data", str(data), "--out", str(run), "--steps", "1",
                 "--no-progress", "--device", "cpu"] + [a for s in sets for a in ("--set", s)]) == 0
    model = load_generator(run)
    for name, joints in model.parts.items():
        net = model.flow_nets[name].state_dict()
        assert torch.allclose(net["block0.model.2.weight"],
                              state["flow_net.block0.model.2.weight"][:, [3 + j for j in joints] +
                                                                       [21 + j for j in joints]], atol=1e-8)
        assert torch.allclose(net["block0.model.0.bias"],
                              state["flow_net.block0.model.0.bias"][[3 + j for j in joints] + [21 + j for j in joints]],
                              atol=1e-8)
        assert torch.allclose(net["decoder1.model.2.weight"], state["flow_net.decoder1.model.2.weight"], atol=1e-8)


def test_init_flow_errors_name_the_problem(tmp_path):
    gfla = converted_fixture(tmp_path)
    state = read_generator_file(gfla).state
    with_image = build_generator("flow", dataset="deepfashion", flow_image_input=True, **FLOW_TINY)
    with_image.init_flow_nets_from_gfla(state)            # the image channels come along
    assert with_image.flow_nets["head"].block0.model[2].weight.shape[1] == 3 + 12
    wider = build_generator("flow", dataset="deepfashion", **{**FLOW_TINY, "flow_ngf": 8})
    with pytest.raises(ModelError, match="flow_ngf"):
        wider.init_flow_nets_from_gfla(state, where="g.safetensors")
    one_scale = build_generator("flow", dataset="market", **FLOW_TINY)
    with pytest.raises(ModelError, match="flow scales"):
        one_scale.init_flow_nets_from_gfla(state)
    from posetransfer.training.build import init_flow_nets

    with pytest.raises(ConfigError, match="part-flow model"):
        init_flow_nets(build_generator("gfla", dataset="market", **FLOW_TINY), str(gfla))
    save_generator(build_generator("flow", dataset="market", **FLOW_TINY), tmp_path / "flow.safetensors")
    with pytest.raises(CheckpointError, match="needs a 'gfla' generator"):
        init_flow_nets(one_scale, str(tmp_path / "flow.safetensors"))


def test_warp_padding_is_an_option():
    img = torch.arange(12.0).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 10.0                                   # everything samples far right of the image
    assert torch.all(warp(img, flow) == 0)
    torch.testing.assert_close(warp(img, flow, padding="border"), img[..., -1:].expand(1, 1, 3, 4))
    g = build_generator("flow", dataset="market", warp_padding="border", **FLOW_TINY)
    assert g.config["warp_padding"] == "border" and g.pose_streams["torso"].padding == "border"
    with pytest.raises(ModelError, match="warp_padding"):
        build_generator("flow", dataset="market", warp_padding="reflect", **FLOW_TINY)


def test_correctness_loss_samples_each_parts_masked_source():
    g = build_generator("flow", dataset="market", **FLOW_TINY)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 128, 64, generator=gen) * 2 - 1
    maps = torch.zeros(1, 18, 128, 64)
    for j in range(18):                                  # a vertical line of joints: every part has a box
        maps[0, j, 6 + 6 * j, 32] = 1.0
    out = g.predict_flows(image, maps, maps)
    masks = out.extras["flow_source_masks"]
    assert len(masks) == 3 and masks[0] is not masks[1]
    seen = []

    def vgg(x):
        seen.append(x.clone())
        return {"relu3_1": torch.nn.functional.avg_pool2d(x, 4)}

    flow_losses.sampling_correctness_loss(vgg, image, image, out)
    # target once, then one masked source per part: I_s ⊙ M_s^part
    assert len(seen) == 4
    for source, mask in zip(seen[1:], masks):
        torch.testing.assert_close(source, image * mask)
    no_parts = build_generator("flow", dataset="market", use_parts=False, **FLOW_TINY)
    assert no_parts.predict_flows(image, maps, maps).extras["flow_source_masks"] == [None]

