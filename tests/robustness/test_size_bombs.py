"""Issue 20, item 6: model-size bombs — a small file that declares (or implies) a huge architecture.

A 290 KB ``generator.safetensors`` whose metadata says ``ngf=256, n_blocks=400`` (about 15 G parameters), or an
official ``.pth`` with one extra key ``att.99999.*`` (100 000 blocks), made ``test`` / ``convert`` allocate until
killed. The declared architecture is now built on the meta device first (no memory) while its parameters are
counted, and refused as soon as it holds far more values than the file: one line, exit 2.

The headline cases run in a subprocess with a 5 GB address-space limit: before the fix they died there
(MemoryError traceback) instead of eating the machine's memory; the others run in this process.
"""
from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import pytest
import torch

import faultlib

REPO = Path(__file__).resolve().parents[2]
GFLA_PTH = REPO / "tests" / "fixtures" / "gfla" / "latest_net_G.pth"
ADDRESS_SPACE = 5 * 2 ** 30


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _cli(args, timeout=120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run(faultlib.CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=faultlib.clean_env(), preexec_fn=_limited)
    return done, time.perf_counter() - started


def _refused(done: subprocess.CompletedProcess, *needles: str) -> None:
    err = done.stderr.strip()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _in_process(args, capsys) -> subprocess.CompletedProcess:
    """The CLI in this process (cheaper) for the bombs whose failure mode is bounded: a regression there
    costs at most about 2 GB (the fixture's narrow GFLA), not the machine."""
    from posetransfer.cli import main

    code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, "", capsys.readouterr().err)


@pytest.fixture(scope="module")
def forged_generator(tmp_path_factory) -> Path:
    """Tiny PATN weights, metadata claiming ngf=256 and 400 blocks."""
    from safetensors.torch import save_file

    from posetransfer.models.registry import build_generator

    model = build_generator("patn", ngf=8, n_blocks=1)
    path = tmp_path_factory.mktemp("bomb") / "generator.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={
        "format": "posetransfer-generator-1", "arch": "patn",
        "config": json.dumps({**model.config, "ngf": 256, "n_blocks": 400})})
    assert path.stat().st_size < 400_000
    return path


def test_forged_generator_metadata_is_refused_before_building(forged_generator, tiny_data, tmp_path, tally):
    done, seconds = _cli(["test", "--checkpoint", forged_generator, "--data", tiny_data, "--out", tmp_path / "out"])
    tally("model-size bomb: generator metadata ngf=256 n_blocks=400 (test)", tried=1,
          refused=int(done.returncode == 2), max_seconds=round(seconds, 1))
    _refused(done, str(forged_generator), "n_blocks=400")
    assert not (tmp_path / "out").exists()


def test_forged_generator_metadata_in_transfer(forged_generator, tmp_path, capsys):
    from posetransfer.io import save_image

    import numpy as np

    photo = tmp_path / "p.png"
    save_image(photo, np.zeros((128, 64, 3), dtype=np.uint8))
    done = _in_process(["transfer", "--checkpoint", forged_generator, "--source", photo, "--target", photo,
                        "--out", tmp_path / "o.png"], capsys)
    _refused(done, str(forged_generator))


def _official_patn(path: Path, extra: dict[str, torch.Tensor]) -> Path:
    """Our PATN uses the official key names; the official wrapper adds ``model.``."""
    from posetransfer.models.registry import build_generator

    state = {f"model.{k}": v for k, v in build_generator("patn", ngf=8, n_blocks=1).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save({**state, **extra}, path)
    return path


def test_official_pth_with_a_huge_block_index(tmp_path, tally):
    good = _official_patn(tmp_path / "good.pth", {})
    done, _ = _cli(["convert", "--arch", "patn", "--input", good, "--out", tmp_path / "good.safetensors"])
    assert done.returncode == 0, done.stderr[-2000:]          # the untouched file converts
    bomb = _official_patn(tmp_path / "latest_net_netG.pth",
                          {"model.att.99999.conv_block_stream1.1.weight": torch.zeros(32, 32, 3, 3)})
    done, seconds = _cli(["convert", "--arch", "patn", "--input", bomb, "--out", tmp_path / "g.safetensors"])
    tally("model-size bomb: official .pth key att.99999.* (convert)", tried=1, refused=int(done.returncode == 2),
          max_seconds=round(seconds, 1))
    _refused(done, str(bomb))
    assert not (tmp_path / "g.safetensors").exists()


@pytest.mark.parametrize("key,shape", [
    ("target.decoder0.0.model.99999.model.0.weight", (4,)),      # 100 000 ResBlocks per decoder stage
    ("source.encoder99999.model.2.weight", (4, 4, 3, 3)),         # 100 001 encoder layers
    ("flow_net.encoder99999.model.2.weight", (4, 4, 3, 3)),
])
def test_gfla_pth_with_a_huge_index(key, shape, tmp_path, capsys, tally):
    state = torch.load(GFLA_PTH, map_location="cpu", weights_only=True)
    state[key] = torch.zeros(shape, dtype=torch.float16)
    bomb = tmp_path / "latest_net_G.pth"
    torch.save(state, bomb)
    started = time.perf_counter()
    done = _in_process(["convert", "--arch", "gfla", "--input", bomb, "--out", tmp_path / "g.safetensors"], capsys)
    tally("model-size bomb: GFLA .pth with a huge layer / block index (convert)", tried=1,
          refused=int(done.returncode == 2), max_seconds=round(time.perf_counter() - started, 1))
    _refused(done, str(bomb))


def test_gfla_discriminator_pth_with_a_huge_index(tmp_path, capsys):
    good = tmp_path / "latest_net_G.pth"
    good.write_bytes(GFLA_PTH.read_bytes())
    state = torch.load(GFLA_PTH.with_name("latest_net_D.pth"), map_location="cpu", weights_only=True)
    for leaf, shape in (("weight_orig", (4, 4, 3, 3)), ("weight_u", (4,)), ("weight_v", (36,))):
        state[f"encoder99999.model.3.{leaf}"] = torch.zeros(shape)
    bomb = tmp_path / "latest_net_D.pth"
    torch.save(state, bomb)
    done = _in_process(["convert", "--arch", "gfla", "--input", good, "--out", tmp_path / "g.safetensors",
                        "--discriminator", bomb], capsys)
    _refused(done, str(bomb))


def test_size_check_counts_while_building():
    """The library function: a declared model far beyond the file stops being built early, on the meta
    device (the counting stops the builder long before 400 blocks exist)."""
    from posetransfer.errors import CheckpointError
    from posetransfer.models.registry import build_generator
    from posetransfer.models.weights_guard import check_declared_size

    small = build_generator("patn", ngf=8, n_blocks=1).state_dict()
    check_declared_size(lambda: build_generator("patn", ngf=8, n_blocks=1), small, "ok.safetensors")
    built = []

    def huge():
        model = build_generator("patn", ngf=256, n_blocks=400)
        built.append(model)
        return model

    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="bomb.safetensors"):
        check_declared_size(huge, small, "bomb.safetensors")
    assert not built and time.perf_counter() - started < 5
