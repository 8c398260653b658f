"""``posetransfer export``: every generator as ONNX and TorchScript, run by onnxruntime / torch.jit.load and
compared with the PyTorch model (max |Δ| ≤ 1e-4) at batch sizes other than the one exported with."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from posetransfer.cli import main
from posetransfer.export import TOLERANCE, adaptive_pool2d, example_inputs, read_metadata
from posetransfer.modelfile import save_generator
from posetransfer.models.registry import build_generator

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (64, 32)
TINY = {"patn": {"ngf": 4, "n_blocks": 1}, "apatn": {"ngf": 4, "n_blocks": 1}, "pona": {"ngf": 4, "n_blocks": 1},
        "resnet": {"ngf": 4, "n_blocks": 1},
        "flow": {"ngf": 4, "max_channels": 16, "flow_ngf": 4, "flow_max_channels": 8},
        "gfla": {"ngf": 4, "max_channels": 16, "flow_ngf": 4, "flow_max_channels": 8}}
ARCHS = sorted(TINY)


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Non-zero attention gates (PoNA's γ/β start at 0) and BN statistics, so every path shows in the output."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        for name in ("gamma", "beta"):
            p = getattr(m, name, None)
            if isinstance(p, torch.nn.Parameter):
                p.data.fill_(0.7)
    return model.eval()


@pytest.fixture(scope="module")
def generator_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    files = {}
    for arch in ARCHS:
        torch.manual_seed(0)
        model = _randomize(build_generator(arch, dataset="market", **TINY[arch]))
        files[arch] = (root / f"{arch}.safetensors", model)
        save_generator(model, files[arch][0])
    return files


def _run_exported(path, fmt, inputs):
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(None, feeds)[0])
    module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(*inputs)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("arch", ARCHS)
def test_export_through_the_cli_runs_like_the_pytorch_model(arch, fmt, generator_files, tmp_path, capsys):
    path, model = generator_files[arch]
    out = tmp_path / f"{arch}.{'onnx' if fmt == 'onnx' else 'pt'}"
    code = main(["export", "--checkpoint", str(path), "--format", fmt, "--out", str(out),
                 "--size", f"{SIZE[0]}x{SIZE[1]}"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert f"export: {fmt} {arch} 64x32 written to {out}" in printed and "checked at batch 3" in printed
    for batch in (1, 4):                                   # the batch axis is dynamic
        inputs = example_inputs(SIZE, batch, seed=7)
        with torch.no_grad():
            reference = model(*inputs)
        got = _run_exported(out, fmt, inputs)
        assert got.shape == reference.shape == (batch, 3, *SIZE)
        assert float((got - reference).abs().max()) <= TOLERANCE
    meta = read_metadata(out)
    assert meta["arch"] == arch and meta["size"] == list(SIZE) and meta["config"] == model.config
    assert meta["heatmap"] == "gaussian" and meta["inputs"] == ["source_image", "source_heatmaps", "target_heatmaps"]
    assert meta["checkpoint"] == str(path)


def test_onnx_metadata_is_in_the_model_props(generator_files, tmp_path):
    import onnx

    path, model = generator_files["patn"]
    out = tmp_path / "patn.onnx"
    assert main(["export", "--checkpoint", str(path), "--format", "onnx", "--out", str(out), "--size", "64x32",
                 "--no-check"]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["arch"] == "patn" and json.loads(props["config"]) == model.config
    assert json.loads(props["size"]) == [64, 32] and props["producer"].startswith("posetransfer ")
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["source_image", "source_heatmaps", "target_heatmaps"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param     # a named (dynamic) batch axis


def test_export_errors_are_one_line(generator_files, tmp_path, capsys):
    path, _ = generator_files["resnet"]
    assert main(["export", "--checkpoint", str(tmp_path / "missing.safetensors"), "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "missing.safetensors" in err
    assert main(["export", "--checkpoint", str(path), "--format", "onnx", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "is a folder" in err
    assert main(["export", "--checkpoint", str(path), "--format", "torchscript", "--out", str(tmp_path / "a.pt"),
                 "--size", "62x30"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "multiples of 4" in err
    assert main(["export", "--checkpoint", str(path), "--format", "torchscript", "--out", str(tmp_path / "a.pt"),
                 "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "float32" in err
    assert not (tmp_path / "a.pt").exists()


@pytest.mark.parametrize("size", [(32, 16), (31, 17), (6, 6)])
def test_adaptive_pooling_for_export_equals_torchs(size):
    x = torch.randn(2, 3, *size)
    for s in (4, 6, (5, 3)):
        assert torch.equal(adaptive_pool2d(x, s, "max"), F.adaptive_max_pool2d(x, s))
        assert torch.allclose(adaptive_pool2d(x, s, "avg"), F.adaptive_avg_pool2d(x, s), atol=1e-6)
