"""A missing optional extra: one line naming ``pip install ...[extra]``, exit 2, no file written — for every
command that needs one, run as a user would (a fresh process in which the extra's package is not importable)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from posetransfer import extras
from posetransfer.errors import PosetransferError

INSTALL = re.compile(r"pip install (-e )?'[^']*\[(\w+)\]'$")


def _single_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _names_extra(line: str, extra: str) -> None:
    match = INSTALL.search(line)
    assert match and match.group(2) == extra, line
    assert "pip install mediapipe" not in line and "pip install fastapi" not in line


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from posetransfer.modelfile import InputContract, save_generator
    from posetransfer.models.registry import build_generator

    path = tmp_path_factory.mktemp("extras") / "tiny.safetensors"
    save_generator(build_generator("patn", ngf=8, n_blocks=1), path, InputContract(size=(128, 64)))
    return path


@pytest.fixture(scope="module")
def person(tiny_dataset) -> tuple[Path, Path, str]:
    """(a test photo, the test annotation CSV, the name of a row in it)."""
    from posetransfer.data import keypoints as K

    data = tiny_dataset("market")
    csv = data / "market-annotation-test.csv"
    name = next(iter(K.read_annotations(csv)))
    return data / "test" / name, csv, name


def test_serve_without_fastapi_or_multipart(run_cli_without, model_file):
    for module in ("fastapi", "python_multipart"):
        proc = run_cli_without([module], "serve", "--checkpoint", model_file, "--port", "8765")
        line = _single_error_line(proc)
        assert line.startswith(f"error: posetransfer serve needs the optional [serve] extra ({module} is not installed)")
        _names_extra(line, "serve")
        assert proc.stdout == ""


def test_keypoints_without_mediapipe_writes_nothing(run_cli_without, person, tmp_path):
    photo, _, _ = person
    out = tmp_path / "ann.csv"
    proc = run_cli_without(["mediapipe"], "keypoints", photo, "--out", out)
    line = _single_error_line(proc)
    assert "pose estimation needs the optional [pose] extra (mediapipe is not installed)" in line
    _names_extra(line, "pose")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # OpenPose JSON input needs no estimator: the same command works without the extra
    openpose = tmp_path / "clip_keypoints.json"
    openpose.write_text(json.dumps({"people": [{"pose_keypoints_2d": [v for k in range(18)
                                                                      for v in (10 + k, 20 + k, 0.9)]}]}))
    proc = run_cli_without(["mediapipe"], "keypoints", openpose, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("name:keypoints_y:keypoints_x")


def test_transfer_and_animate_without_mediapipe(run_cli_without, model_file, person, tmp_path):
    photo, csv, name = person
    out = tmp_path / "out"
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        (folder / f"p{k}.jpg").write_bytes(photo.read_bytes())
    # a folder of sources: the batch stops at the first image (one line), it does not fail every image
    proc = run_cli_without(["mediapipe"], "transfer", "--checkpoint", model_file, "--source", folder,
                           "--target-csv", csv, "--target-name", name, "--out", out)
    line = _single_error_line(proc)
    assert "pose estimation needs the optional [pose] extra (mediapipe is not installed)" in line
    assert "or give its keypoints as a pose JSON file" in line
    _names_extra(line.split(" (or give")[0], "pose")
    assert not out.exists() or list(out.iterdir()) == []
    poses = tmp_path / "poses"
    poses.mkdir()
    from posetransfer.data import keypoints as K
    from posetransfer.pose import write_keypoints_json

    write_keypoints_json(poses / "000.json", K.read_annotations(csv)[name], (128, 64))
    video = tmp_path / "clip.mp4"
    proc = run_cli_without(["mediapipe"], "animate", "--checkpoint", model_file, "--source", photo,
                           "--poses", poses, "--out", video)
    line = _single_error_line(proc)
    assert "[pose] extra" in line and not video.exists()


def test_install_command_names_the_extra_and_the_clone_of_an_editable_install(monkeypatch):
    monkeypatch.setattr(extras, "_editable_root", lambda: None)
    assert extras.install_command("pose") == "pip install 'posetransfer[pose]'"
    monkeypatch.setattr(extras, "_editable_root", lambda: "/src/posetransfer")
    assert extras.install_command("serve") == "pip install -e '/src/posetransfer[serve]'"


def test_require_extra_imports_or_names_what_is_missing(monkeypatch):
    import sys

    assert extras.require_extra("json", "eval", "x") is json
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(extras.MissingExtra, match=r"^posetransfer serve needs the optional \[serve\] extra "
                                                  r"\(fastapi is not installed\): pip install"):
        extras.require_extra("fastapi", "serve", "posetransfer serve")
    assert issubclass(extras.MissingExtra, PosetransferError)


def test_every_extra_is_declared_in_pyproject_and_all_holds_them():
    import tomllib

    root = Path(__file__).resolve().parent.parent
    optional = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(optional)
    assert optional["all"] == [f"posetransfer[{','.join(sorted(extras.EXTRAS))}]"]
    for command, needs in extras.COMMAND_EXTRAS.items():
        assert all(extra in extras.EXTRAS for extra, _ in needs), command


def test_readme_table_lists_every_command_that_needs_an_extra():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    first_screen = readme[: readme.index("## Contents")]
    for command, needs in extras.COMMAND_EXTRAS.items():
        row = next((line for line in first_screen.splitlines() if line.startswith(f"| `{command}`")), None)
        assert row is not None, command
        for extra, _ in needs:
            assert f"[{extra}]" in row, (command, extra)
    assert "[all]" in first_screen
