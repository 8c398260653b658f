"""Issue 20, item 5: I/O errors are one line and exit 2, and leave no partial results where an atomic write fits.

Cases: a disk that fills up during a checkpoint and during ``test``; a read-only output folder for every command
that writes (train, test, demo, transfer, animate, reid-augment, eval, keypoints, prepare pairs, synth, convert);
``--out`` naming an existing file where a folder is expected, or a folder where a file is expected; a symlink
loop as ``--out``.

Disk full and read-only use real mounts (a 3 MB / 1 MB tmpfs, remounted read-only) where ``mount`` is allowed
(root); elsewhere those tests skip and the *simulated* variants below still run: ENOSPC raised by monkeypatched
writers (safetensors' ``save_file`` for checkpoints, PIL's ``Image.save`` for ``test``'s images).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import diskfaults
import faultlib
from posetransfer.cli import main
from posetransfer.io import save_image

REPO = Path(__file__).resolve().parents[2]
GFLA_PTH = REPO / "tests" / "fixtures" / "gfla" / "latest_net_G.pth"
STANDING = [[20, 32], [30, 32], [30, 24], [45, 22], [58, 22], [30, 40], [45, 42], [58, 42], [64, 27],
            [86, 27], [110, 27], [64, 37], [86, 37], [110, 37], [17, 30], [17, 34], [19, 27], [19, 37]]


@pytest.fixture(scope="module")
def inputs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """Everything the commands read: a tiny generator, a photo with its pose, a pose sequence, generated
    test images for eval, keypoints JSON files for ``keypoints``."""
    from posetransfer.data import keypoints as K
    from posetransfer.io import read_image
    from posetransfer.models.registry import build_generator
    from posetransfer.modelfile import InputContract, save_generator

    root = tmp_path_factory.mktemp("io-inputs")
    gen = root / "patn.safetensors"
    save_generator(build_generator("patn", ngf=8, n_blocks=1, dropout=0.0), gen, InputContract(size=(128, 64)))
    photo = root / "photos" / "person.jpg"
    save_image(photo, np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    pose = root / "poses" / "person.json"
    pose.parent.mkdir()
    pose.write_text(json.dumps({"keypoints": STANDING, "size": [128, 64]}))
    sequence = root / "sequence"
    sequence.mkdir()
    for i in range(2):
        (sequence / f"{i:03d}.json").write_text(json.dumps({"keypoints": STANDING, "size": [128, 64]}))
    generated = root / "generated"
    for a, b in K.read_pairs(tiny_data / "market-pairs-test.csv"):
        save_image(generated / f"{a}___{b}.png", read_image(tiny_data / "test" / b))
    return {"gen": gen, "photo": photo, "photos": photo.parent, "pose": pose, "poses": pose.parent,
            "sequence": sequence, "generated": generated, "data": tiny_data,
            "annotation": tiny_data / "market-annotation-train.csv"}


def _train(i, out):
    return ["train", "--preset", faultlib.PRESET, "--data", i["data"], "--out", out, "--steps", "2", "--no-progress",
            *faultlib.cli_set_args(faultlib.tiny_overrides(2))]


#: command → (kind of --out, argv builder); "dir" outputs are folders, "file" outputs have the given suffix
COMMANDS = {
    "train": ("dir", _train),
    "test": ("dir", lambda i, out: ["test", "--checkpoint", i["gen"], "--data", i["data"], "--out", out,
                                    "--size", "32x16"]),
    "demo": ("dir", lambda i, out: ["demo", "--out", out, "--steps", "1", "--identities", "4", "--no-progress"]),
    "transfer": ("file.png", lambda i, out: ["transfer", "--checkpoint", i["gen"], "--source", i["photo"],
                                             "--source-pose", i["pose"], "--target", i["pose"], "--out", out]),
    "transfer-folder": ("dir", lambda i, out: ["transfer", "--checkpoint", i["gen"], "--source", i["photos"],
                                               "--source-pose", i["poses"], "--target", i["pose"], "--out", out]),
    "animate": ("file.gif", lambda i, out: ["animate", "--checkpoint", i["gen"], "--source", i["photo"],
                                            "--source-pose", i["pose"], "--poses", i["sequence"], "--out", out]),
    "reid-augment": ("dir", lambda i, out: ["reid-augment", "--checkpoint", i["gen"], "--data", i["data"],
                                            "--out", out, "--size", "32x16"]),
    "eval": ("file.json", lambda i, out: ["eval", "--generated", i["generated"], "--data", i["data"],
                                          "--metrics", "ssim,l1", "--no-progress", "--out", out]),
    "keypoints": ("file.csv", lambda i, out: ["keypoints", str(i["pose"]), "--out", out, "--no-progress"]),
    "prepare-pairs": ("file.csv", lambda i, out: ["prepare", "pairs", i["annotation"], out]),
    "synth": ("dir", lambda i, out: ["synth", "--out", out, "--identities", "2", "--poses", "2"]),
    "convert": ("file.safetensors", lambda i, out: ["convert", "--arch", "gfla", "--input", GFLA_PTH, "--out", out]),
}


def _output(base: Path, kind: str) -> Path:
    return base / "out" if kind == "dir" else base / f"out.{kind.split('.', 1)[1]}"


def _run(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    return code, lines[-1] if len(lines) == 1 else err


def _one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err[-2000:]
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


# ---------------------------------------------------------------------------------------------------------------
# read-only output folders
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_read_only_output_folder(command, inputs, tmp_path, capsys, tally):
    kind, argv = COMMANDS[command]
    with diskfaults.read_only(tmp_path / "ro") as ro:
        out = _output(ro, kind)
        code, err = _run(argv(inputs, out), capsys)
        tally("read-only output folder", tried=1, one_line_exit_2=int(code == 2 and "\n" not in err))
        _one_line(code, err, str(ro))
        assert "read-only" in err.lower() or "permission denied" in err.lower(), err


# ---------------------------------------------------------------------------------------------------------------
# --out of the wrong kind, symlink loops
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_out_of_the_wrong_kind(command, inputs, tmp_path, capsys, tally):
    kind, argv = COMMANDS[command]
    out = _output(tmp_path, kind)
    if kind == "dir":
        out.write_text("precious")               # a file where the command wants a folder
    else:
        out.mkdir()                              # a folder named like the output file
        (out / "keep.txt").write_text("precious")
    code, err = _run(argv(inputs, out), capsys)
    tally("--out an existing file/folder of the wrong kind", tried=1, one_line_exit_2=int(code == 2))
    _one_line(code, err, str(out))
    if kind == "dir":
        assert out.read_text() == "precious"
    else:
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("command", ["train", "test", "transfer", "eval", "demo"])
def test_symlink_loop_as_out(command, inputs, tmp_path, capsys, tally):
    kind, argv = COMMANDS[command]
    loop = tmp_path / "loop"
    os.symlink(loop, loop)                       # loop -> loop
    out = loop if kind == "dir" else loop / Path(_output(tmp_path, kind)).name
    code, err = _run(argv(inputs, out), capsys)
    tally("symlink loop as --out", tried=1, one_line_exit_2=int(code == 2))
    _one_line(code, err, str(loop))


def test_symlink_loop_as_data(inputs, tmp_path, capsys):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    code, err = _run(["test", "--checkpoint", inputs["gen"], "--data", loop, "--out", tmp_path / "o"], capsys)
    _one_line(code, err, str(loop))


# ---------------------------------------------------------------------------------------------------------------
# disk full: a real tmpfs
# ---------------------------------------------------------------------------------------------------------------
def test_disk_full_during_a_checkpoint(inputs, tmp_path, capsys, tally):
    """3 MB: config and the first checkpoint (1.9 MB) fit, the second does not."""
    with diskfaults.tmpfs(tmp_path / "small", "3m") as disk:
        run = disk / "run"
        argv = ["train", "--preset", faultlib.PRESET, "--data", inputs["data"], "--out", run, "--steps", "4",
                "--no-progress", *faultlib.cli_set_args(faultlib.tiny_overrides(4))]
        code, err = _run(argv, capsys)
        info = faultlib.inspect_run(run)
        tally("disk full during a checkpoint (tmpfs)", tried=1, one_line_exit_2=int(code == 2),
              partial_checkpoints_left=len(info["debris"]))
        _one_line(code, err, "No space left on device", str(run / "checkpoints"))
        assert info["listed"] == [2] and info["latest"] == 2 and info["invalid"] == [], info
        assert info["debris"] == [], info          # the unfinished step_4.tmp is gone: its space is free again
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["checkpoint"].endswith("step_00000002")


def test_disk_full_during_test(inputs, tmp_path, capsys, tally):
    """96 KB hold a few of the 32×16 PNGs, not all 6 (and test_run.json): nothing of the run is left."""
    with diskfaults.tmpfs(tmp_path / "small", "96k") as disk:
        filler = disk / "filler.bin"
        filler.write_bytes(b"\0" * (80 * 1024))       # most of the disk is already used
        out = disk / "generated"
        code, err = _run(["test", "--checkpoint", inputs["gen"], "--data", inputs["data"], "--out", out,
                          "--size", "32x16"], capsys)
        left = sorted(p.name for p in out.rglob("*")) if out.exists() else []
        tally("disk full during test (tmpfs)", tried=1, one_line_exit_2=int(code == 2), partial_files_left=len(left))
        _one_line(code, err, "No space left on device", str(out))
        assert left == [], left


# ---------------------------------------------------------------------------------------------------------------
# disk full, simulated (runs where nothing can be mounted)
# ---------------------------------------------------------------------------------------------------------------
def test_disk_full_during_a_checkpoint_simulated(inputs, tmp_path, capsys, monkeypatch, tally):
    import safetensors
    import safetensors.torch

    from posetransfer import modelfile

    real = safetensors.torch.save_file
    calls = {"n": 0}

    def full_disk(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] >= 5:            # checkpoint 1 writes 3 safetensors files; fail inside checkpoint 2
            Path(filename).write_bytes(b"\0" * 100)    # a torn file, like the real writer leaves
            raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device "
                                              "(os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    monkeypatch.setattr(modelfile, "save_file", full_disk)   # the one writer of safetensors files imports it
    run = tmp_path / "run"
    argv = ["train", "--preset", faultlib.PRESET, "--data", inputs["data"], "--out", run, "--steps", "4",
            "--no-progress", *faultlib.cli_set_args(faultlib.tiny_overrides(4))]
    code, err = _run(argv, capsys)
    monkeypatch.undo()
    info = faultlib.inspect_run(run)
    tally("disk full during a checkpoint (simulated SafetensorError)", tried=1, one_line_exit_2=int(code == 2),
          partial_checkpoints_left=len(info["debris"]))
    _one_line(code, err, "No space left on device", str(run / "checkpoints"))
    assert info["listed"] == [2] and info["latest"] == 2 and info["debris"] == [], info


def _disk_full_after(monkeypatch, saves: int) -> None:
    """PIL's ``Image.save`` raises ENOSPC from the ``saves``-th call on (a disk that just filled up)."""
    from PIL import Image

    real = Image.Image.save
    calls = {"n": 0}

    def full_disk(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= saves:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)


def test_disk_full_during_test_simulated(inputs, tmp_path, capsys, monkeypatch, tally):
    _disk_full_after(monkeypatch, 4)
    out = tmp_path / "generated"
    code, err = _run(["test", "--checkpoint", inputs["gen"], "--data", inputs["data"], "--out", out,
                      "--size", "32x16"], capsys)
    monkeypatch.undo()
    left = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    tally("disk full during test (simulated ENOSPC)", tried=1, one_line_exit_2=int(code == 2),
          partial_files_left=len(left))
    _one_line(code, err, "No space left on device", str(out))
    assert left == [], left


def test_files_of_an_earlier_test_run_survive_a_failed_one(inputs, tmp_path, capsys, monkeypatch):
    """Only what the failed run itself created is removed."""
    out = tmp_path / "generated"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _disk_full_after(monkeypatch, 3)
    code, _ = _run(["test", "--checkpoint", inputs["gen"], "--data", inputs["data"], "--out", out,
                    "--size", "32x16"], capsys)
    monkeypatch.undo()
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    shutil.rmtree(out)


def test_disk_full_stops_a_transfer_folder_batch(inputs, tmp_path, capsys, monkeypatch):
    """A full disk is not a bad photo: the batch stops with one line instead of reporting every photo."""
    from PIL import Image

    photos = tmp_path / "photos"
    poses = tmp_path / "poses"
    for i in range(3):
        save_image(photos / f"p{i}.png", np.full((128, 64, 3), 60 * i, dtype=np.uint8))
        poses.mkdir(exist_ok=True)
        shutil.copy(inputs["pose"], poses / f"p{i}.json")
    real = Image.Image.save

    def full_disk(self, fp, *args, **kwargs):
        if "out" in str(fp):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "out"
    code = main(["transfer", "--checkpoint", str(inputs["gen"]), "--source", str(photos), "--source-pose", str(poses),
                 "--target", str(inputs["pose"]), "--out", str(out)])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "No space left on device" in errors[0], err
    assert "failed:" not in err, err
