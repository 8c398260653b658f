"""Issue 20, item 3 (and the config cases of item 8): every numeric option finite and in range, and no
checkpoint with non-finite weights, ever.

Before: ``optim.lr=.inf`` passed validation and step 1's checkpoint held almost only non-finite weights, later
cited as the "last good checkpoint"; ``lr=.nan`` passed because ``nan <= 0`` is false; ``grad_clip=-1``
flipped the gradient's sign; ``loss.l1=.nan`` silently dropped the term; ``optim.betas=[2,3]``, a huge
``train.seed`` and ``model.ngf=0`` ended in tracebacks from torch.
"""
from __future__ import annotations

import json

import pytest

import faultlib
from posetransfer.cli import main

BAD_OVERRIDES = [
    ("optim.lr=.inf", "optim.lr"), ("optim.lr=.nan", "optim.lr"), ("optim.lr=-1e-4", "optim.lr"),
    ("optim.lr=1e39", "optim.lr"), ("optim.d_lr_ratio=1e35", "optim.d_lr_ratio"),
    ("optim.d_lr_ratio=.inf", "optim.d_lr_ratio"), ("optim.d_lr_ratio=.nan", "optim.d_lr_ratio"),
    ("optim.grad_clip=-1", "optim.grad_clip"), ("optim.grad_clip=.nan", "optim.grad_clip"),
    ("optim.grad_clip=0", "optim.grad_clip"),
    ("optim.betas=[2,3]", "optim.betas"), ("optim.betas=[0.5,1.0]", "optim.betas"),
    ("optim.betas=[-0.1,0.9]", "optim.betas"), ("optim.betas=[.nan,0.9]", "optim.betas"),
    ("loss.l1=.nan", "loss.l1"), ("loss.gan=.inf", "loss.gan"), ("loss.perceptual=-1", "loss.perceptual"),
    ("loss.style=.nan", "loss.style"), ("loss.correctness=.inf", "loss.correctness"),
    ("loss.regularization=.nan", "loss.regularization"),
    ("dataset.sigma=.inf", "dataset.sigma"), ("dataset.sigma=0", "dataset.sigma"),
    ("train.seed=100000000000000000000000", "train.seed"), ("train.seed=-5", "train.seed"),
    ("model.ngf=0", "ngf"), ("model.ngf=-3", "ngf"), ("model.n_blocks=-1", "n_blocks"),
    ("model.dropout=.nan", "dropout"), ("discriminators.shape.ndf=0", "ndf"),
    ("discriminators.shape.ndf=.inf", "ndf"),
]


@pytest.mark.parametrize("override,key", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_numeric_option_is_one_line_error(override, key, tiny_data, tmp_path, capsys, tally):
    run = tmp_path / "run"
    argv = ["train", "--preset", faultlib.PRESET, "--data", str(tiny_data), "--out", str(run), "--steps", "1",
            "--no-progress", *faultlib.cli_set_args(faultlib.tiny_overrides(2)), "--set", override]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    error = err[err.rfind("error: "):] if "error: " in err else err
    tally("config: non-finite / out-of-range numeric option", tried=1, refused=int(code == 2))
    assert code == 2, err[-1500:]
    assert "\n" not in error and key in error, error
    assert not (run / "checkpoints").exists()


def test_weights_that_become_non_finite_are_never_checkpointed(tiny_data, tmp_path, capsys, monkeypatch, tally):
    """The loss and the gradient of step 3 are finite, but the generator's update writes inf into a weight
    (injected: Adam.step of step 3 — what an lr close to the float32 range does). The run must stop at step 3
    citing step 2 (really finite) as the last good checkpoint, and never write step 3."""
    import torch

    run = tmp_path / "run"
    base = ["train", "--preset", faultlib.PRESET, "--data", str(tiny_data), "--out", str(run), "--no-progress",
            *faultlib.cli_set_args(faultlib.tiny_overrides(10, checkpoint_every=1))]
    assert main(base + ["--steps", "2"]) == 0
    capsys.readouterr()
    step = torch.optim.Adam.step
    calls = {"n": 0}

    def poisoned_step(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:                        # the first update after resuming: step 3's generator step
            with torch.no_grad():   # the first element, whatever the layout (batch-norm models train channels_last)
                weight = self.param_groups[0]["params"][0]
                weight[(0,) * weight.dim()] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoned_step)
    code = main(base + ["--steps", "4", "--resume"])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    error = err[err.rfind("error: "):]
    info = faultlib.inspect_run_deep(run)
    tally("weights non-finite after a finite update (injected inf weight)", tried=1, stopped=int(code == 2),
          nonfinite_checkpoints=sum(bool(v) for v in info["nonfinite"].values()))
    assert code == 2, err[-1500:]
    assert "step 3" in error and "non-finite" in error and "\n" not in error, error
    assert f"last good checkpoint: {run / 'checkpoints' / 'step_00000002'}" in error, error
    assert info["latest"] == 2 and max(info["listed"]) == 2, info
    assert not any(info["nonfinite"].values()), info["nonfinite"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["checkpoint"].endswith("step_00000002")
