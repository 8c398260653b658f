"""posetransfer.load_model: the contract's precedence (override > file > old-file fallbacks), and the frame
mapping of contracts whose generator frame differs from the dataset's (GFLA DeepFashion)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import posetransfer
from posetransfer.data import keypoints as K
from posetransfer.kinds import FASHION, MARKET
from posetransfer.errors import ConfigError
from posetransfer.inference import InferenceModel
from posetransfer.modelfile import GENERATOR_FORMAT, InputContract, save_generator, write_safetensors
from posetransfer.models.registry import build_generator

TINY = {"ngf": 8, "n_blocks": 1, "norm": "instance", "dropout": 0.0}
POSE = np.array([[20, 32], [30, 32], [30, 24], [45, 22], [58, 22], [30, 40], [45, 42], [58, 42], [64, 27],
                 [86, 27], [110, 27], [64, 37], [86, 37], [110, 37], [17, 30], [17, 34], [19, 27], [19, 37]])


def old_file(path, model):
    """A generator file as written before input contracts (format, arch, config only)."""
    write_safetensors(path, model.state_dict(), {"format": GENERATOR_FORMAT, "arch": model.arch,
                                                 "config": json.dumps(model.config)})
    return path


def messages(caplog, level):
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("posetransfer")]


def test_the_files_contract_and_logged_overrides(tmp_path, caplog):
    path = tmp_path / "g.safetensors"
    save_generator(build_generator("patn", **TINY), path, InputContract(size=(256, 176), heatmap="onehot",
                                                                       kind="fashion"))
    with caplog.at_level(logging.INFO):
        model = posetransfer.load_model(path)
    assert (model.size, model.heatmap, model.contract_source) == ((256, 176), "onehot", "file")
    assert not messages(caplog, logging.WARNING) and not [m for m in messages(caplog, logging.INFO) if "overrid" in m]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        model = posetransfer.load_model(path, size="market", heatmap="gaussian", sigma=3)
    assert (model.size, model.heatmap, model.sigma, model.contract_source) == ((128, 64), "gaussian", 3.0, "override")
    info = [m for m in messages(caplog, logging.INFO) if "overridden" in m]
    assert len(info) == 1 and str(path) in info[0] and "256x176" in info[0] and "128x64" in info[0]
    with pytest.raises(ConfigError, match="heatmap"):
        posetransfer.load_model(path, heatmap="dots")


def test_an_old_file_without_anything_gets_the_market_default_and_one_warning(tmp_path, caplog):
    path = old_file(tmp_path / "old.safetensors", build_generator("patn", **TINY))
    with caplog.at_level(logging.INFO):
        model = posetransfer.load_model(path)
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and str(path) in warnings[0] and "128x64" in warnings[0] and "Gaussian" in warnings[0]
    assert (model.size, model.heatmap, model.contract_source) == ((128, 64), "gaussian", "fallback")
    assert posetransfer.load_generator(path).input_contract is None


def test_an_old_checkpoint_folder_falls_back_to_its_training_config(tmp_path, caplog):
    folder = tmp_path / "export"
    folder.mkdir()
    old_file(folder / "generator.safetensors", build_generator("patn", **TINY))
    (folder / "state.json").write_text(json.dumps({"step": 5, "config": {"dataset": {
        "kind": "fashion", "size": [256, 176], "heatmap": "onehot", "sigma": 6}}}))
    with caplog.at_level(logging.INFO):
        model = posetransfer.load_model(folder)
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and "training config" in warnings[0] and "256x176" in warnings[0]
    assert "one-hot" in warnings[0] and str(folder / "generator.safetensors") in warnings[0]
    assert (model.size, model.heatmap, model.contract.kind) == ((256, 176), "onehot", "fashion")


def test_a_generator_frame_other_than_the_data_frame_is_mapped_in_and_out():
    """GFLA DeepFashion's contract: 256×176 dataset images stretched to 256×256, keypoints scaled with int()."""
    contract = InputContract(size=(256, 256), kind="fashion", data_size=(256, 176), keypoint_rounding="truncate")
    model = InferenceModel(build_generator("patn", **TINY), contract)
    seen = []
    model.generator.register_forward_pre_hook(lambda _m, args: seen.append([a.shape for a in args]))
    assert model.frame == (256, 176) and model.size == (256, 256)
    kp = K.rescale_keypoints(POSE, MARKET.size, FASHION.size)
    image = np.full((256, 176, 3), 90, dtype=np.uint8)
    out = model.generate(image, kp, kp)
    assert out.shape == (256, 176, 3)
    assert all(tuple(s[2:]) == (256, 256) for s in seen[0])
    mapped = model.keypoints_to_model(kp)
    present = ~K.missing_mask(kp)
    assert np.array_equal(mapped[present, 1], (kp[present, 1] / 176 * 256).astype(int))
    assert np.array_equal(mapped[present, 0], kp[present, 0])
    maps = model.heatmaps(mapped)
    j = int(np.nonzero(present)[0][0])
    assert np.unravel_index(int(maps[j].argmax()), (256, 256)) == tuple(mapped[j])
    with pytest.raises(ConfigError, match="images are 128x64 .* takes 256x176"):
        model.check_frame((128, 64), "data/market")


def test_transfer_on_a_photo_returns_images_and_extras(tmp_path):
    model = InferenceModel(build_generator("patn", **TINY), InputContract(size=(128, 64)))
    photo = np.full((300, 200, 3), 120, dtype=np.uint8)
    source = posetransfer.Pose(K.rescale_keypoints(POSE, (128, 64), (300, 200)), (300, 200), "photo")
    result = model.transfer(photo, posetransfer.Pose(POSE, (128, 64), "target"), source)
    assert result.model_image.shape == (128, 64, 3) and result.source.image.shape == (128, 64, 3)
    assert result.image.shape[2] == 3 and result.output.attention
    assert np.array_equal(result.target_keypoints, POSE)
    with torch.no_grad():
        batch = model.generate_tensors(torch.zeros(2, 3, 128, 64), torch.zeros(2, 18, 128, 64),
                                       torch.zeros(2, 18, 128, 64))
    assert batch.shape == (2, 3, 128, 64)
