"""Every inference command obeys the generator file's input contract, with no size or heatmap flag:

* a PATN trained at 256×176 on one-hot maps, reloaded by ``test``, ``transfer``, ``animate``, ``serve`` and
  ``reid-augment``, runs at 256×176 on one-hot maps;
* GFLA's converted DeepFashion file runs at its 256×256 frame (the 256×176 images stretched, Gaussian maps)
  through ``test`` and ``transfer``, and gives images back in the dataset's frame;
* a file written before contracts gets one warning naming it and what was assumed.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.cli import main
from posetransfer.data import keypoints as K
from posetransfer.inference import InferenceModel
from posetransfer.io import read_image

from apps_support import write_pose_json

GFLA_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gfla" / "latest_net_G.pth"


@pytest.fixture
def seen(monkeypatch):
    """The tensors every command hands the generator: [(source image, source maps, target maps), ...]."""
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    original = InferenceModel.generate_tensors

    def spy(self, source_image, source_heatmaps, target_heatmaps, extras=False):
        calls.append((source_image.clone(), source_heatmaps.clone(), target_heatmaps.clone()))
        return original(self, source_image, source_heatmaps, target_heatmaps, extras)

    monkeypatch.setattr(InferenceModel, "generate_tensors", spy)
    return calls


def assert_frame_and_maps(calls, size: tuple[int, int], heatmap: str) -> None:
    assert calls, "the generator was never called"
    for image, *maps in calls:
        assert tuple(image.shape[2:]) == size
        for m in maps:
            assert tuple(m.shape[2:]) == size
            per_joint = m.flatten(2)
            assert float(per_joint.max()) == 1.0
            onehot = bool(((m == 0) | (m == 1)).all()) and bool((per_joint.sum(-1) <= 1).all())
            assert onehot == (heatmap == "onehot"), "pose maps are not the contract's"


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, tiny_dataset) -> Path:
    """One training step of a tiny PATN at 256×176 on one-hot maps (the patn-deepfashion preset's frame)."""
    from posetransfer.config import load_config
    from posetransfer.train import train

    overrides = ["model.ngf=8", "model.n_blocks=1", "model.dropout=0.0", "dataset.heatmap=onehot",
                 "discriminators.appearance.ndf=8", "discriminators.appearance.n_blocks=1",
                 "discriminators.shape.ndf=8", "discriminators.shape.n_blocks=1", "train.batch_size=2",
                 "train.workers=0", "train.checkpoint_every=1", "train.image_every=1000", "train.log_every=1",
                 "train.amp=false", "train.device=cpu", "loss.perceptual=0", "optim.iterations=1",
                 "optim.decay_start=0"]
    run = tmp_path_factory.mktemp("fashion-run") / "run"
    train(load_config("patn-deepfashion", overrides=overrides), tiny_dataset("fashion"), run, steps=1, progress=False)
    return run


def _test_pose(data: Path, index: int = 0) -> tuple[str, np.ndarray]:
    annotations = K.read_annotations(data / "fasion-resize-annotation-test.csv")
    name = sorted(annotations)[index]
    return name, annotations[name]


def test_the_trained_file_says_256x176_one_hot(fashion_run):
    from posetransfer.checkpoint import resolve_generator_file
    from posetransfer.modelfile import read_generator_file

    contract = read_generator_file(resolve_generator_file(fashion_run)).contract
    assert (contract.size, contract.heatmap, contract.kind) == ((256, 176), "onehot", "fashion")
    assert contract.provenance == {"trained": str(fashion_run.resolve()), "step": 1}


def test_test_command(fashion_run, tiny_dataset, seen, tmp_path):
    out = tmp_path / "gen"
    assert main(["test", "--checkpoint", str(fashion_run), "--data", str(tiny_dataset("fashion")), "--out", str(out),
                 "--limit", "2"]) == 0
    assert_frame_and_maps(seen, (256, 176), "onehot")
    images = sorted(out.glob("*___*.png"))
    assert len(images) == 2 and read_image(images[0]).shape == (256, 176, 3)
    summary = json.loads((out / "test_run.json").read_text())
    assert summary["input_contract"]["heatmap"] == "onehot" and summary["contract_source"] == "file"


def test_transfer_command(fashion_run, tiny_dataset, seen, tmp_path):
    data = tiny_dataset("fashion")
    name, kp = _test_pose(data)
    target, _ = _test_pose(data, 1)
    pose = write_pose_json(tmp_path / "source.json", kp, (256, 176))
    out = tmp_path / "t.png"
    assert main(["transfer", "--checkpoint", str(fashion_run), "--source", str(data / "test" / name),
                 "--source-pose", str(pose), "--target-csv", str(data / "fasion-resize-annotation-test.csv"),
                 "--target-name", target, "--out", str(out)]) == 0
    assert_frame_and_maps(seen, (256, 176), "onehot")
    assert read_image(out).shape == (256, 176, 3) and read_image(tmp_path / "t_model.png").shape == (256, 176, 3)


def test_animate_command(fashion_run, tiny_dataset, seen, tmp_path):
    data = tiny_dataset("fashion")
    name, kp = _test_pose(data)
    poses = tmp_path / "poses"
    poses.mkdir()
    for i in range(2):
        write_pose_json(poses / f"{i:03d}.json", _test_pose(data, i + 1)[1], (256, 176))
    out = tmp_path / "a.gif"
    assert main(["animate", "--checkpoint", str(fashion_run), "--source", str(data / "test" / name),
                 "--source-pose", str(write_pose_json(tmp_path / "s.json", kp, (256, 176))), "--poses", str(poses),
                 "--out", str(out)]) == 0
    assert_frame_and_maps(seen, (256, 176), "onehot")
    from PIL import Image

    with Image.open(out) as gif:
        assert gif.size == (176, 256) and gif.n_frames == 2


def test_reid_augment_command(fashion_run, tiny_dataset, seen, tmp_path):
    out = tmp_path / "reid"
    assert main(["reid-augment", "--checkpoint", str(fashion_run), "--data", str(tiny_dataset("fashion")),
                 "--out", str(out), "--portion", "0.5", "--min-joints", "1"]) == 0
    assert_frame_and_maps(seen, (256, 176), "onehot")
    generated = sorted((out / "bounding_box_train").glob("*_gen.jpg"))
    assert generated and read_image(generated[0]).shape == (256, 176, 3)


def test_serve_command(fashion_run, tiny_dataset, seen, monkeypatch):
    from fastapi.testclient import TestClient

    from posetransfer.apps import serve as S

    served = {}
    monkeypatch.setattr(S, "serve", lambda model, host, port, data: served.update(model=model, data=data))
    assert main(["serve", "--checkpoint", str(fashion_run), "--data", str(tiny_dataset("fashion"))]) == 0
    model = served["model"]
    assert (model.frame, model.heatmap) == ((256, 176), "onehot")
    client = TestClient(S.create_app(model, served["data"]))
    assert client.get("/api/info").json()["size"] == [256, 176]
    poses = client.get("/api/gallery").json()["poses"]
    r = client.post("/api/transfer", data={"sample": poses[0]["name"],
                                           "target_keypoints": json.dumps(poses[1]["keypoints"])})
    assert r.status_code == 200, r.text
    assert_frame_and_maps(seen, (256, 176), "onehot")


# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gfla_deepfashion(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gfla") / "gfla-deepfashion.safetensors"
    assert main(["convert", "--arch", "gfla", "--input", str(GFLA_FIXTURE), "--out", str(out),
                 "--dataset", "deepfashion"]) == 0
    return out


def test_gfla_deepfashion_runs_at_its_contracts_frame_through_test(gfla_deepfashion, tiny_dataset, seen, tmp_path):
    out = tmp_path / "gen"
    assert main(["test", "--checkpoint", str(gfla_deepfashion), "--data", str(tiny_dataset("fashion")),
                 "--out", str(out), "--limit", "2"]) == 0
    assert_frame_and_maps(seen, (256, 256), "gaussian")
    images = sorted(out.glob("*___*.png"))
    assert len(images) == 2 and read_image(images[0]).shape == (256, 176, 3)     # back in the dataset's frame
    summary = json.loads((out / "test_run.json").read_text())
    assert summary["size"] == [256, 176] and summary["model_size"] == [256, 256]


def test_gfla_deepfashion_runs_at_its_contracts_frame_through_transfer(gfla_deepfashion, tiny_dataset, seen,
                                                                       tmp_path):
    data = tiny_dataset("fashion")
    name, kp = _test_pose(data)
    target, target_kp = _test_pose(data, 1)
    out = tmp_path / "t.png"
    assert main(["transfer", "--checkpoint", str(gfla_deepfashion), "--source", str(data / "test" / name),
                 "--source-pose", str(write_pose_json(tmp_path / "s.json", kp, (256, 176))),
                 "--target-csv", str(data / "fasion-resize-annotation-test.csv"), "--target-name", target,
                 "--out", str(out)]) == 0
    assert_frame_and_maps(seen, (256, 256), "gaussian")
    assert read_image(out).shape == (256, 176, 3)
    # the target map peaks where GFLA puts the joint: x scaled by 256/176 and truncated
    j = int(np.nonzero(~K.missing_mask(target_kp))[0][0])
    peak = np.unravel_index(int(seen[0][2][0, j].argmax()), (256, 256))
    assert peak == (int(target_kp[j, 0]), int(target_kp[j, 1] / 176 * 256))


# --------------------------------------------------------------------------------------------------
def test_a_file_without_contract_gets_the_warning(tmp_path, synth_data, tiny_dataset, caplog, capsys):
    from posetransfer.modelfile import GENERATOR_FORMAT, write_safetensors
    from posetransfer.models.registry import build_generator

    model = build_generator("patn", ngf=8, n_blocks=1, dropout=0.0)
    old = tmp_path / "old.safetensors"
    write_safetensors(old, model.state_dict(), {"format": GENERATOR_FORMAT, "arch": "patn",
                                                "config": json.dumps(model.config)})
    with caplog.at_level(logging.WARNING, logger="posetransfer"):
        assert main(["test", "--checkpoint", str(old), "--data", str(synth_data), "--out", str(tmp_path / "g"),
                     "--limit", "1"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(old) in warnings[0] and "assumed" in warnings[0] and "128x64" in warnings[0]
    capsys.readouterr()
    # never silently the wrong frame: on 256x176 data it stops and says what to pass
    assert main(["test", "--checkpoint", str(old), "--data", str(tiny_dataset("fashion")),
                 "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("error:") == 1 and "256x176" in err and "--size 256x176" in err
    assert main(["test", "--checkpoint", str(old), "--data", str(tiny_dataset("fashion")), "--out", str(tmp_path / "f"),
                 "--size", "256x176", "--heatmap", "onehot", "--limit", "1"]) == 0
