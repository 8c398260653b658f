"""The model file format (posetransfer.modelfile): the input contract in the metadata, its JSON, old files."""
from __future__ import annotations

import json

import pytest
import torch

import posetransfer
from posetransfer.errors import CheckpointError, ModelError
from posetransfer.modelfile import (CONTRACT_KEY, GENERATOR_FORMAT, InputContract, read_generator_file,
                                    read_safetensors, save_generator, write_safetensors)
from posetransfer.models.registry import build_generator

TINY = {"ngf": 8, "n_blocks": 1}


def test_contract_json_round_trip_and_validation():
    contract = InputContract(size=(256, 256), heatmap="gaussian", sigma=6, kind="fashion", data_size=(256, 176),
                             keypoint_rounding="truncate", provenance={"converted": "x.pth", "sha256": "ab"})
    data = contract.to_json()
    assert data["size"] == [256, 256] and data["data_size"] == [256, 176]
    assert data["normalisation"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    back = InputContract.from_json(json.loads(json.dumps(data)))
    assert back == contract and back.provenance == contract.provenance and back.frame == (256, 176)
    assert InputContract(size=(128, 64), data_size=(128, 64)).data_size is None     # same frame: no mapping
    for bad in ({"size": [128, 64], "heatmap": "dots"}, {"size": [0, 64]}, {"size": [128, 64], "sigma": -1},
                {"size": [128, 64], "normalisation": {"mean": [0.485, 0.456, 0.406]}}, {"heatmap": "onehot"},
                {"size": [128, 64], "version": 9}, ["not", "a", "dict"]):
        with pytest.raises(CheckpointError, match="^f.safetensors: "):
            InputContract.from_json(bad, where="f.safetensors")
    with pytest.raises(ModelError, match="kind"):
        InputContract(size=(128, 64), kind="celeba")


def test_every_generator_file_carries_its_contract(tmp_path):
    path = tmp_path / "g.safetensors"
    contract = InputContract(size=(256, 176), heatmap="onehot", kind="fashion", provenance={"trained": "r", "step": 3})
    save_generator(build_generator("patn", **TINY), path, contract)
    metadata, _ = read_safetensors(path)
    assert metadata["format"] == GENERATOR_FORMAT and json.loads(metadata[CONTRACT_KEY])["heatmap"] == "onehot"
    found = read_generator_file(path)
    assert found.arch == "patn" and found.contract == contract and found.contract.provenance["step"] == 3
    assert posetransfer.load_generator(path).input_contract == contract


def test_a_deepfashion_model_saved_without_a_contract_is_not_128x64(tmp_path):
    """The issue's case: ``save_generator`` of a ``deepfashion`` model loaded back as a 128×64 model."""
    path = tmp_path / "df.safetensors"
    save_generator(build_generator("patn", dataset="deepfashion", **TINY), path)
    model = posetransfer.load_model(path)
    assert model.size == (256, 176) and model.contract.kind == "fashion"
    assert model.contract.provenance == {"dataset": "deepfashion"}
    # a loaded model keeps its contract when saved again
    again = tmp_path / "again.safetensors"
    save_generator(posetransfer.load_generator(path), again)
    assert read_generator_file(again).contract == model.contract


def test_a_model_without_contract_or_preset_cannot_be_saved(tmp_path):
    with pytest.raises(ModelError, match="no input contract"):
        save_generator(build_generator("patn", **TINY), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_gfla_files_converted_before_contracts_map_onto_input_contract(tmp_path):
    """GFLA conversions of issue 18 kept the contract in ``config["input_contract"]`` with GFLA's names."""
    model = build_generator("gfla", dataset="deepfashion", ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)
    legacy = {"size": [256, 256], "pose_input": "heatmaps", "heatmap": "gaussian", "sigma": 6.0,
              "keypoint_frame": [256, 176], "keypoint_rounding": "truncate", "image_resize": "bilinear",
              "normalisation": "[-1, 1]", "kind": "fashion", "provenance": "GFLA released deepfashion weights"}
    path = tmp_path / "old_gfla.safetensors"
    write_safetensors(path, model.state_dict(), {"format": GENERATOR_FORMAT, "arch": "gfla",
                                                 "config": json.dumps({**model.config, "input_contract": legacy})})
    found = read_generator_file(path)
    assert "input_contract" not in found.config
    assert found.contract.size == (256, 256) and found.contract.frame == (256, 176)
    assert found.contract.keypoint_rounding == "truncate" and found.contract.provenance["setting"].startswith("GFLA")
    assert posetransfer.load_generator(path).arch == "gfla"


def test_malformed_contract_metadata_is_one_line(tmp_path):
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, {"w": torch.zeros(1)}, {"format": GENERATOR_FORMAT, "arch": "patn", "config": "{}",
                                                    CONTRACT_KEY: "{not json"})
    with pytest.raises(CheckpointError, match=r"bad.safetensors: malformed input_contract"):
        read_generator_file(path)


def test_files_written_before_the_dataset_rename_still_load(tmp_path, caplog):
    """Files whose config says ``"preset"`` (the old name of the dataset settings) load without a warning."""
    path = tmp_path / "old.safetensors"
    save_generator(build_generator("patn", dataset="deepfashion", **TINY), path)
    metadata, state = read_safetensors(path)
    config = json.loads(metadata["config"])
    config["preset"] = config.pop("dataset")
    write_safetensors(path, state, {**metadata, "config": json.dumps(config)})
    with caplog.at_level("WARNING"):
        model = posetransfer.load_generator(path)
    assert model.config["dataset"] == "deepfashion"
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]
