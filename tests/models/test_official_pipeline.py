"""``posetransfer convert`` + ``posetransfer test`` on official checkpoints reproduce the official test pipeline.

The reference below is our own transcription of what the official code does at test time
(tengteng95/Pose-Transfer ``test.py``, ``data/keypoint.py``, ``data/base_dataset.get_transform`` with
``--resize_or_crop no``, ``tool/generate_pose_map_{market,fashion}.py``, ``util/util.tensor2im``; PoNA's
repository runs the same pipeline): PIL RGB → ``ToTensor`` → ``Normalize(0.5, 0.5)``; pose maps
``exp(-((yy - y)² + (xx - x)²) / (2σ²))`` with σ 6 from an ``np.meshgrid``, stored as float32 (Market) or as
**uint8** (DeepFashion: every value below 1 truncates to 0), read back with ``.float()`` and moved to C×H×W;
the network on ``(P1, cat(BP1, BP2))`` in eval mode; ``tensor2im`` = ``((x + 1) / 2 · 255).astype(uint8)``
(truncation). The weights are random, in the official key layout (``model.`` / ``module.`` prefixes,
PyTorch 0.3 InstanceNorm running statistics, the ``--no_dropout`` layout), saved as ``.pth``; the data are
tiny synthetic datasets of each layout. The command runs with no size or heatmap flag: the converted file's
input contract must bring it there. Allowed: one grey level (we round where ``tensor2im`` truncates).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.cli import main
from posetransfer.io import read_image
from posetransfer.models.registry import build_generator

from official_layout import no_dropout, official_patn_state, official_pona_state

MISSING = -1
CASES = {
    # name: (arch, dataset layout, preset flag of convert, official state builder, our config, file layout)
    "patn-market": ("patn", "market", None, lambda: official_patn_state(norm="batch"),
                    {"ngf": 8, "n_blocks": 2, "norm": "batch"}, "no_dropout"),
    "patn-deepfashion": ("patn", "fashion", "deepfashion", lambda: official_patn_state(norm="instance"),
                         {"ngf": 8, "n_blocks": 2, "norm": "instance"}, "plain"),
    "pona-deepfashion": ("pona", "fashion", None, official_pona_state,
                         {"ngf": 8, "n_blocks": 2, "norm": "instance"}, "dataparallel"),
}


# --------------------------------------------------------------------------------------------------
# The official test pipeline, transcribed
# --------------------------------------------------------------------------------------------------
def official_annotations(csv_path: Path) -> dict[str, np.ndarray]:
    """``pd.read_csv(sep=':')`` + ``load_pose_cords_from_strings``: name → (18, 2) (y, x)."""
    rows = csv_path.read_text(encoding="utf-8").splitlines()[1:]
    out = {}
    for row in rows:
        name, ys, xs = row.split(":")
        out[name.strip()] = np.stack([json.loads(ys), json.loads(xs)], axis=1)
    return out


def cords_to_map(cords: np.ndarray, img_size: tuple[int, int], dtype: str, sigma: float = 6) -> np.ndarray:
    """``tool/generate_pose_map_*.py``: H×W×18 maps; ``dtype`` float32 (Market) or uint8 (DeepFashion)."""
    result = np.zeros(img_size + cords.shape[0:1], dtype=dtype)
    for i, point in enumerate(cords):
        if point[0] == MISSING or point[1] == MISSING:
            continue
        xx, yy = np.meshgrid(np.arange(img_size[1]), np.arange(img_size[0]))
        result[..., i] = np.exp(-((yy - point[0]) ** 2 + (xx - point[1]) ** 2) / (2 * sigma ** 2))
    return result


def to_tensor_normalized(path: Path) -> torch.Tensor:
    """``Image.open(...).convert('RGB')`` → ``ToTensor()`` → ``Normalize((.5,)*3, (.5,)*3)``."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)
    return (tensor - 0.5) / 0.5


def pose_tensor(maps: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy(BP).float().transpose(2, 0).transpose(2, 1)``: H×W×C → C×H×W."""
    return torch.from_numpy(maps).float().transpose(2, 0).transpose(2, 1)


def tensor2im(image: torch.Tensor) -> np.ndarray:
    image_numpy = image[0].cpu().float().numpy()
    image_numpy = (np.transpose(image_numpy, (1, 2, 0)) + 1) / 2.0 * 255.0
    return image_numpy.astype(np.uint8)


def reference_network(arch: str, official_state: dict[str, torch.Tensor], config: dict) -> torch.nn.Module:
    """The network with the official weights, loaded without the converter: the official wrapper's
    ``model.`` prefix stripped and the InstanceNorm statistics PyTorch ≥ 0.4 has no buffers for dropped."""
    net = build_generator(arch, **config).eval()
    ours = net.state_dict()
    state = {k[len("model."):]: v for k, v in official_state.items() if k[len("model."):] in ours}
    for key in ours:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
    net.load_state_dict(state, strict=True)
    return net


@torch.no_grad()
def official_outputs(net: torch.nn.Module, data: Path, layout: str) -> dict[str, np.ndarray]:
    prefix, size, dtype = {"market": ("market", (128, 64), "float32"),
                           "fashion": ("fasion-resize", (256, 176), "uint8")}[layout]
    annotations = official_annotations(data / f"{prefix}-annotation-test.csv")
    pairs = [line.split(",") for line in (data / f"{prefix}-pairs-test.csv").read_text().split()[1:]]
    outputs = {}
    for p1, p2 in pairs:
        image = to_tensor_normalized(data / "test" / p1)[None]
        bp1 = pose_tensor(cords_to_map(annotations[p1], size, dtype))[None]
        bp2 = pose_tensor(cords_to_map(annotations[p2], size, dtype))[None]
        fake = net(image, bp1, bp2)           # PATNModel / PoNAModel: stream2 gets cat((BP1, BP2), 1)
        outputs[f"{p1}___{p2}.png"] = tensor2im(fake)
    return outputs


def pose_sensitive(state: dict[str, torch.Tensor], gain: float = 3.0, pose_gain: float = 5.0) -> dict[str, torch.Tensor]:
    """Random N(0, 0.02) weights give nearly flat images that barely listen to the pose (near-uniform
    attention, gates near 0.5): larger weights, and a larger pose path and attention projection, make the
    output depend on the maps as trained weights do (measured: Market PATN, one-hot instead of Gaussian maps
    moves the output by 0.3 grey levels at gains 1/1, by 11 at 3/5)."""
    sharpen = ("stream2", "query_conv.weight", "key_conv.weight")
    return {k: v * gain * (pose_gain if any(s in k for s in sharpen) else 1.0)
            if k.endswith("weight") and v.dim() > 1 else v for k, v in state.items()}


def official_file(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    if layout == "no_dropout":
        return no_dropout(state)
    if layout == "dataparallel":
        return {f"module.{k}": v for k, v in state.items()}
    return state


# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_convert_then_test_reproduces_the_official_pipeline(case, tmp_path, tiny_dataset, caplog):
    arch, layout, preset, make_state, config, file_layout = CASES[case]
    data = tiny_dataset(layout)
    torch.manual_seed(7)
    state = pose_sensitive(make_state())
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(official_file(state, file_layout), pth)
    converted = tmp_path / f"{case}.safetensors"
    assert main(["convert", "--arch", arch, "--input", str(pth), "--out", str(converted),
                 *(["--dataset", preset] if preset else [])]) == 0
    out = tmp_path / "generated"
    with caplog.at_level(logging.INFO, logger="posetransfer"):
        assert main(["test", "--checkpoint", str(converted), "--data", str(data), "--out", str(out)]) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "contract" in r.getMessage()]

    expected = official_outputs(reference_network(arch, state, config), data, layout)
    assert len(expected) == 6
    worst = 0
    for name, reference in expected.items():
        ours = read_image(out / name)
        assert ours.shape == reference.shape
        worst = max(worst, int(np.abs(ours.astype(int) - reference.astype(int)).max()))
    assert worst <= 1, f"{case}: up to {worst} grey levels from the official pipeline"
    assert float(np.std(np.stack(list(expected.values())))) > 5      # the images are not flat

    # the same command with the other pose maps is far from the official output: the contract matters
    wrong = {"market": "onehot", "fashion": "gaussian"}[layout]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="posetransfer"):
        assert main(["test", "--checkpoint", str(converted), "--data", str(data), "--out", str(tmp_path / "w"),
                     "--heatmap", wrong]) == 0
    overrides = [r.getMessage() for r in caplog.records if "overridden" in r.getMessage()]
    assert len(overrides) == 1 and converted.name in overrides[0]
    off = max(int(np.abs(read_image(tmp_path / "w" / n).astype(int) - ref.astype(int)).max())
              for n, ref in expected.items())
    assert off > 1


def test_converted_files_record_the_official_setting(tmp_path):
    from posetransfer.io import sha256_file
    from posetransfer.modelfile import read_generator_file

    pth = tmp_path / "latest_net_netG.pth"
    torch.save(official_patn_state(norm="instance"), pth)
    out = tmp_path / "patn.safetensors"
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(out)]) == 0
    contract = read_generator_file(out).contract
    assert contract.size == (256, 176) and contract.heatmap == "onehot" and contract.kind == "fashion"
    assert contract.provenance == {"converted": "latest_net_netG.pth", "sha256": sha256_file(pth),
                                   "setting": "official PATN deepfashion (tengteng95/Pose-Transfer)"}
    torch.save(official_patn_state(norm="batch"), pth)
    assert main(["convert", "--arch", "patn", "--input", str(pth), "--out", str(out), "--dataset", "market"]) == 0
    contract = read_generator_file(out).contract
    assert (contract.size, contract.heatmap, contract.sigma, contract.kind) == ((128, 64), "gaussian", 6.0, "market")
