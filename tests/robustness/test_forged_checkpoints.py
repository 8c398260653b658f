"""Issue 20, item 7: forged checkpoints — files whose manifest *matches* (re-signed after the forgery) or whose
manifest itself is malformed — are corrupt: the previous checkpoint is used, with the warning naming the file.

Before: a manifest with ``"files": []`` or ``{}`` verified (nothing to check), a string crashed; ``state.json``
with a non-integer step or without the config gave a traceback; an RNG tensor of the wrong dtype and weights cast
to bool / int64 / complex were loaded (``load_state_dict`` casts silently) and training went on.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import faultlib
from posetransfer import checkpoint as ckpt
from posetransfer.cli import main

STEPS = 4


@pytest.fixture(scope="module")
def pristine(tiny_data, tmp_path_factory) -> Path:
    """A run with checkpoints at steps 2 and 4."""
    run = tmp_path_factory.mktemp("forged") / "run"
    argv = ["train", "--preset", faultlib.PRESET, "--data", str(tiny_data), "--out", str(run), "--steps", str(STEPS),
            "--no-progress", *faultlib.cli_set_args(faultlib.tiny_overrides(8))]
    assert main(argv) == 0
    assert faultlib.inspect_run(run)["listed"] == [2, 4]
    return run


def _resign(folder: Path) -> None:
    """Recompute the manifest so that the checksums match the forged files (what a forger would do)."""
    manifest = json.loads((folder / ckpt.MANIFEST_FILE).read_text())
    for name in manifest["files"]:
        path = folder / name
        manifest["files"][name] = {"sha256": ckpt.sha256_file(path), "bytes": path.stat().st_size}
    (folder / ckpt.MANIFEST_FILE).write_text(json.dumps(manifest))


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _cast_tensors(path: Path, select, dtype: torch.dtype) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    chosen = [k for k in tensors if select(k)]
    assert chosen, "nothing selected"
    for key in chosen:
        tensors[key] = tensors[key].to(dtype)
    save_file(tensors, str(path), metadata=metadata)


def _manifest_files(value):
    return lambda folder: _edit_json(folder / ckpt.MANIFEST_FILE, lambda m: m.__setitem__("files", value))


def _state(edit):
    def forge(folder):
        _edit_json(folder / ckpt.STATE_FILE, edit)
        _resign(folder)
    return forge


def _cast(file: str, select, dtype):
    def forge(folder):
        _cast_tensors(folder / file, select, dtype)
        _resign(folder)
    return forge


FORGERIES = {
    "manifest files []": _manifest_files([]),
    "manifest files {}": _manifest_files({}),
    "manifest files string": _manifest_files("generator.safetensors"),
    "manifest entry not a mapping": _manifest_files({n: "x" for n in ("generator.safetensors",
                                                                      "discriminators.safetensors",
                                                                      "training_state.safetensors", "state.json")}),
    "state.json step 'four'": _state(lambda s: s.__setitem__("step", "four")),
    "state.json step 4.5": _state(lambda s: s.__setitem__("step", 4.5)),
    "state.json without config": _state(lambda s: s.pop("config")),
    "state.json config a string": _state(lambda s: s.__setitem__("config", "patn")),
    "RNG tensor float32": _cast(ckpt.TENSORS_FILE, lambda k: k.startswith("rng/torch/"), torch.float32),
    "optimizer moment int64": _cast(ckpt.TENSORS_FILE, lambda k: k.endswith("/exp_avg"), torch.int64),
    "generator weights bool": _cast(ckpt.GENERATOR_FILE, lambda k: k.endswith("weight"), torch.bool),
    "generator weights int64": _cast(ckpt.GENERATOR_FILE, lambda k: k.endswith("weight"), torch.int64),
    "generator weights complex": _cast(ckpt.GENERATOR_FILE, lambda k: k.endswith("weight"), torch.complex64),
    "one generator bias int64": _cast(ckpt.GENERATOR_FILE, lambda k: k == "stream1_down.2.bias", torch.int64),
    "discriminator weights int64": _cast(ckpt.DISCRIMINATORS_FILE, lambda k: k.endswith("weight"), torch.int64),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_newest_checkpoint_is_corrupt(forgery, pristine, tmp_path, caplog, tally):
    """What ``--resume`` (and every reader of a run) uses to pick its checkpoint: the forgery is skipped with a
    one-line warning naming it, the previous checkpoint is chosen."""
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    newest = run / "checkpoints" / f"step_{STEPS:08d}"
    FORGERIES[forgery](newest)
    caplog.set_level("WARNING")
    chosen = ckpt.latest_valid(ckpt.checkpoints_root(run))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "falling back" in r.getMessage()]
    tally("forged checkpoint (re-signed manifest or malformed manifest)", tried=1,
          fell_back=int(chosen is not None and chosen.name == "step_00000002"))
    assert chosen == run / "checkpoints" / "step_00000002"
    assert len(warnings) == 1 and str(newest) in warnings[0] and "\n" not in warnings[0], (forgery, warnings)


@pytest.mark.parametrize("forgery", ["manifest files {}", "state.json step 'four'", "RNG tensor float32",
                                     "generator weights int64"])
def test_resume_from_a_forged_run_continues_from_the_previous_checkpoint(forgery, pristine, tiny_data, tmp_path,
                                                                         caplog):
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    newest = run / "checkpoints" / f"step_{STEPS:08d}"
    FORGERIES[forgery](newest)
    caplog.set_level("WARNING")
    code = main(["train", "--data", str(tiny_data), "--out", str(run), "--resume", "--steps", str(STEPS + 1),
                 "--no-progress"])
    log = (run / "train.log").read_text()
    assert code == 0
    assert any(str(newest) in r.getMessage() and "falling back" in r.getMessage() for r in caplog.records)
    assert f"resumed from {run / 'checkpoints' / 'step_00000002'} (step 2)" in log, log[-2000:]


@pytest.mark.parametrize("forgery", ["generator weights int64", "generator weights complex", "manifest files {}",
                                     "manifest files string"])
def test_generator_consumers_skip_a_forged_newest_checkpoint(forgery, pristine, tmp_path, caplog):
    """``test`` / ``transfer`` / ``serve`` find their generator with resolve_generator_file: the same fallback."""
    from posetransfer.inference import load_generator

    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    newest = run / "checkpoints" / f"step_{STEPS:08d}"
    FORGERIES[forgery](newest)
    caplog.set_level("WARNING")
    assert ckpt.resolve_generator_file(run) == run / "checkpoints" / "step_00000002" / ckpt.GENERATOR_FILE
    assert any(str(newest) in r.getMessage() for r in caplog.records)
    model = load_generator(run)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_a_generator_file_with_non_float_weights_is_refused(dtype, tmp_path, capsys):
    from posetransfer.models.registry import build_generator
    from posetransfer.modelfile import InputContract, save_generator

    path = tmp_path / "g.safetensors"
    save_generator(build_generator("patn", ngf=8, n_blocks=1), path, InputContract(size=(128, 64)))
    _cast_tensors(path, lambda k: k.endswith("weight"), dtype)
    code = main(["transfer", "--checkpoint", str(path), "--source", str(path), "--target", str(path),
                 "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and str(path) in err, err
    assert "dtype" in err or "type" in err, err
