"""Issue 20, item 8 (outside the web demo, see test_serve_guards.py): the smaller defects.

* 16-bit PNGs turned white (PIL's ``I;16`` → RGB clips at 255): they are scaled;
* ``test`` printed "120 written" when 114 files existed: a pair with a bad image was served as the next good
  pair and overwrote its file; each output is now written and counted once;
* one-line errors instead of tracebacks: ``animate --fps -5``, ``--max-frames 0``, ``--scale 100000``,
  ``test --workers -1``, ``eval --batch-size 0`` / ``--limit 0``, ``--device bogus`` on every command that
  loads a generator and on ``eval`` (``serve --port 70000``, ``model.ngf=0``, ``optim.betas=[2,3]`` and huge
  seeds are in test_serve_guards.py and test_numeric_options.py).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.io import read_image, save_image

STANDING = [[20, 32], [30, 32], [30, 24], [45, 22], [58, 22], [30, 40], [45, 42], [58, 42], [64, 27],
            [86, 27], [110, 27], [64, 37], [86, 37], [110, 37], [17, 30], [17, 34], [19, 27], [19, 37]]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_data) -> dict[str, Path]:
    from posetransfer.data import keypoints as K
    from posetransfer.models.registry import build_generator
    from posetransfer.modelfile import InputContract, save_generator

    root = tmp_path_factory.mktemp("small")
    gen = root / "patn.safetensors"
    save_generator(build_generator("patn", ngf=8, n_blocks=1, dropout=0.0), gen, InputContract(size=(128, 64)))
    photo = root / "photo.png"
    save_image(photo, np.full((128, 64, 3), 100, dtype=np.uint8))
    pose = root / "pose.json"
    pose.write_text(json.dumps({"keypoints": STANDING, "size": [128, 64]}))
    sequence = root / "sequence"
    sequence.mkdir()
    for i in range(2):
        shutil.copy(pose, sequence / f"{i}.json")
    generated = root / "generated"
    for a, b in K.read_pairs(tiny_data / "market-pairs-test.csv"):
        save_image(generated / f"{a}___{b}.png", read_image(tiny_data / "test" / b))
    return {"gen": gen, "photo": photo, "pose": pose, "sequence": sequence, "generated": generated,
            "data": tiny_data}


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(64, 32) * 31).astype(np.uint16)   # 0 … 63457
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (64, 32, 3)
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.abs(image[..., 0].astype(int) - expected).max() <= 1
    assert (image == 255).mean() < 0.01, "clipped to white"


def test_test_counts_each_written_file_once(files, tmp_path, capsys, tally):
    """A truncated image: its pairs are skipped (reported), every other pair written once — and the count
    printed is the number of files on disk."""
    data = tmp_path / "data"
    shutil.copytree(files["data"], data)
    victim = sorted((data / "test").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])
    out = tmp_path / "generated"
    code = main(["test", "--checkpoint", str(files["gen"]), "--data", str(data), "--out", str(out),
                 "--batch-size", "2", "--size", "32x16"])
    printed = capsys.readouterr().out
    on_disk = sorted(p.name for p in out.glob("*___*.png"))
    run = json.loads((out / "test_run.json").read_text())
    tally("test: a bad image's pairs (written count vs files)", tried=1,
          count_matches=int(run["written"] == len(on_disk)))
    assert code == 0
    assert run["written"] == len(on_disk), (run["written"], on_disk)
    assert f"test: {len(on_disk)} image(s) written" in printed, printed
    assert not any(victim.name in name for name in on_disk)
    pairs = [line.strip().split(",") for line in (data / "market-pairs-test.csv").read_text().splitlines()[1:]]
    good = {f"{a}___{b}.png" for a, b in pairs if victim.name not in (a, b)}
    assert set(on_disk) == good


def _one_line(argv, capsys, *needles):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


ANIMATE_BAD = [("--fps", "-5"), ("--fps", "0"), ("--fps", "nan"), ("--fps", "inf"), ("--max-frames", "0"),
               ("--scale", "100000")]


@pytest.mark.parametrize("flag,value", ANIMATE_BAD, ids=[f"{f}={v}" for f, v in ANIMATE_BAD])
def test_animate_bad_numbers(flag, value, files, tmp_path, capsys, tally):
    argv = ["animate", "--checkpoint", files["gen"], "--source", files["photo"], "--source-pose", files["pose"],
            "--poses", files["sequence"], "--out", tmp_path / "a.gif", flag, value]
    _one_line(argv, capsys, flag)
    tally("one-line errors for bad numeric flags", tried=1)
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize("command", ["transfer", "test", "animate", "reid-augment", "serve", "eval"])
def test_bogus_device(command, files, tmp_path, capsys, tally):
    common = ["--checkpoint", files["gen"], "--device", "bogus"]
    argv = {
        "transfer": ["transfer", *common, "--source", files["photo"], "--source-pose", files["pose"],
                     "--target", files["pose"], "--out", tmp_path / "o.png"],
        "test": ["test", *common, "--data", files["data"], "--out", tmp_path / "o"],
        "animate": ["animate", *common, "--source", files["photo"], "--source-pose", files["pose"],
                    "--poses", files["sequence"], "--out", tmp_path / "a.gif"],
        "reid-augment": ["reid-augment", *common, "--data", files["data"], "--out", tmp_path / "r"],
        "serve": ["serve", *common, "--port", "8765"],
        "eval": ["eval", "--generated", files["generated"], "--data", files["data"], "--metrics", "ssim,lpips",
                 "--device", "bogus", "--no-progress"],
    }[command]
    _one_line(argv, capsys, "--device", "bogus")
    tally("one-line errors for bad numeric flags", tried=1)


@pytest.mark.parametrize("argv,needle", [
    (["test", "--workers", "-1"], "--workers"),
    (["eval", "--batch-size", "0"], "--batch-size"),
    (["eval", "--batch-size", "-4"], "--batch-size"),
    (["eval", "--limit", "0"], "--limit"),
])
def test_test_and_eval_bad_numbers(argv, needle, files, tmp_path, capsys, tally):
    if argv[0] == "test":
        argv = argv + ["--checkpoint", files["gen"], "--data", files["data"], "--out", tmp_path / "o"]
    else:
        argv = argv + ["--generated", files["generated"], "--data", files["data"], "--metrics", "ssim",
                       "--no-progress"]
    _one_line(argv, capsys, needle)
    tally("one-line errors for bad numeric flags", tried=1)


HUGE = str(10 ** 23)


@pytest.mark.parametrize("seed", [HUGE, "-1"])
@pytest.mark.parametrize("command", ["demo", "reid-augment", "prepare-pairs", "synth"])
def test_huge_and_negative_seeds(command, seed, files, tmp_path, capsys):
    argv = {
        "demo": ["demo", "--out", tmp_path / "d", "--steps", "1", "--identities", "4", "--no-progress"],
        "reid-augment": ["reid-augment", "--checkpoint", files["gen"], "--data", files["data"], "--out", tmp_path / "r",
                         "--size", "32x16"],
        "prepare-pairs": ["prepare", "pairs", files["data"] / "market-annotation-train.csv", tmp_path / "p.csv",
                          "--test-sample", "3"],
        "synth": ["synth", "--out", tmp_path / "s", "--identities", "2", "--poses", "2"],
    }[command] + ["--seed", seed]
    if command == "synth" and seed == HUGE:          # numpy takes any non-negative integer: it simply works
        assert main([str(a) for a in argv]) == 0
        return
    _one_line(argv, capsys, "seed")
    assert not (tmp_path / "d").exists()             # refused before generating anything
