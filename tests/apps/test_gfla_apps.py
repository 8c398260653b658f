"""A (tiny, untrained) ``gfla`` generator in the applications: ``test --save-flows`` figures, a transfer
with its attention (occlusion) masks, and the web demo's transfer endpoint."""
from __future__ import annotations

import json

import pytest

from posetransfer.cli import main
from posetransfer.io import read_image
from posetransfer.models.registry import build_generator
from posetransfer.modelfile import save_generator


@pytest.fixture(scope="module")
def gfla_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gfla") / "gfla.safetensors"
    save_generator(build_generator("gfla", dataset="market", ngf=4, max_channels=16, flow_ngf=4,
                                   flow_max_channels=8), path)
    return path


def test_save_flows_writes_one_figure_per_pair(tmp_path, synth_data, gfla_file):
    out = tmp_path / "g"
    assert main(["test", "--checkpoint", str(gfla_file), "--arch", "gfla", "--data", str(synth_data),
                 "--out", str(out), "--limit", "2", "--save-flows"]) == 0
    figures = sorted((out / "flows").glob("*___*_flow.png"))
    assert len(figures) == 2
    assert read_image(figures[0]).shape[1] > 3 * 64          # source | flow | warped (and a second row)
    assert not list((out / "flows").glob("*_relations.png"))    # no pyramid non-local block in GFLA


def test_transfer_saves_the_attention_masks(tmp_path, synth_data, gfla_file):
    from posetransfer.data.keypoints import read_annotations

    annotations = read_annotations(synth_data / "market-annotation-test.csv")
    names = sorted(annotations)[:2]
    out = tmp_path / "t.png"
    assert main(["transfer", "--checkpoint", str(gfla_file), "--source", str(synth_data / "test" / names[0]),
                 "--target-csv", str(synth_data / "market-annotation-test.csv"), "--target-name", names[1],
                 "--out", str(out), "--save-attention"]) == 0
    assert read_image(out).shape[:2] == (128, 64)
    assert read_image(tmp_path / "t_attention.png").shape[1] > 3 * 64


def test_web_demo_transfers_with_gfla(synth_data, gfla_file):
    from fastapi.testclient import TestClient

    from posetransfer.apps import serve as S
    from posetransfer.inference import load_model

    client = TestClient(S.create_app(load_model(gfla_file), synth_data))
    assert client.get("/api/info").json()["arch"] == "gfla"
    poses = client.get("/api/gallery").json()["poses"]
    r = client.post("/api/transfer", data={"sample": poses[0]["name"],
                                           "target_keypoints": json.dumps(poses[1]["keypoints"])})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"].startswith("data:image/png;base64,") and body["attention"].startswith("data:image/png")
