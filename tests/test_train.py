"""The trainer on tiny real files: it learns, stops on NaN keeping the last good checkpoint, resumes bit-exactly,
survives SIGKILL, trains the flow stage, and the ``posetransfer train`` command behaves."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posetransfer import checkpoint as C
from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.errors import TrainingError
from posetransfer.models.base import Generator, GeneratorOutput
from posetransfer.models import registry
from posetransfer.inference import load_generator
from posetransfer.train import learning_rate, train

SIZE = (32, 16)
TINY = [
    "model={name: patn, ngf: 8, n_blocks: 1, norm: instance, dropout: 0.5}",
    "discriminators.appearance={name: patn_resnet, input: [image, source_image], ndf: 8, n_blocks: 1, "
    "norm: instance, dropout: 0.5}",
    "discriminators.shape={name: patn_resnet, input: [image, target_heatmaps], ndf: 8, n_blocks: 1, "
    "norm: instance, dropout: 0.0}",
    f"dataset.size=[{SIZE[0]}, {SIZE[1]}]", "dataset.sigma=2", "train.batch_size=2", "train.workers=0",
    "train.log_every=1", "train.image_every=4", "loss.pool_size=2", "optim.iterations=20", "optim.decay_start=5",
]


def make_dataset(root: Path, identities: int = 3, poses: int = 2, size=SIZE, seed: int = 0) -> Path:
    """A tiny PATN-layout dataset: one coloured figure per identity, drawn at random joint positions."""
    from posetransfer.data import keypoints as K
    from posetransfer.io import save_image, write_json

    rng = np.random.default_rng(seed)
    h, w = size
    (root / "train").mkdir(parents=True)
    annotations, pairs = {}, []
    for ident in range(1, identities + 1):
        colour = rng.integers(40, 255, size=3)
        names = []
        for pose in range(poses):
            kp = np.stack([rng.integers(2, h - 2, 18), rng.integers(1, w - 1, 18)], axis=1).astype(np.int64)
            image = np.full((h, w, 3), 200, np.uint8)
            for y, x in kp:
                image[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = colour
            name = f"{ident:04d}_c1s1_{pose:06d}_01.jpg"
            save_image(root / "train" / name, image)
            annotations[name] = kp
            names.append(name)
        pairs += [(a, b) for a in names for b in names if a != b]
    K.write_annotations(root / "market-annotation-train.csv", annotations)
    K.write_pairs(root / "market-pairs-train.csv", pairs)
    write_json(root / "dataset.json", {"kind": "market", "size": [h, w], "synthetic": True})
    return root


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data")


def tiny_config(*extra: str) -> dict:
    return load_config("patn-market", TINY + list(extra))


def tensors_of(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for name in (C.GENERATOR_FILE, C.DISCRIMINATORS_FILE, C.TENSORS_FILE):
        out.update({f"{name}:{k}": v for k, v in load_file(str(folder / name)).items()})
    return out


def assert_identical(a: Path, b: Path) -> None:
    ta, tb = tensors_of(a), tensors_of(b)
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"differ: {different[:5]}"
    sa, sb = (json.loads((f / C.STATE_FILE).read_text()) for f in (a, b))
    for key in ("data", "optimizers", "ranks", "losses"):
        assert sa[key] == sb[key], key


def test_learning_rate_schedule_is_constant_then_linear_to_zero():
    optim = {"lr": 2e-4, "iterations": 90000, "decay_start": 60000}
    assert learning_rate(0, optim) == learning_rate(59999, optim) == 2e-4
    assert learning_rate(75000, optim) == pytest.approx(1e-4)
    assert learning_rate(90000, optim) == 0.0
    assert learning_rate(10, {"lr": 1e-3, "iterations": 100, "decay_start": 100}) == 1e-3


def test_loss_decreases_on_a_fixed_batch(data, tmp_path):
    # a 2-pair dataset with batch 2: every step sees the same two pairs
    config = tiny_config("optim.lr=2e-3", "optim.iterations=40", "optim.decay_start=40", "train.checkpoint_every=100",
                         "model.dropout=0.0", "loss.gan=1.0")
    from posetransfer.data.dataset import PairDataset

    dataset = PairDataset(data, "train", pairs=[("0001_c1s1_000000_01.jpg", "0001_c1s1_000001_01.jpg"),
                                                ("0002_c1s1_000000_01.jpg", "0002_c1s1_000001_01.jpg")], sigma=2)
    first = train(config, None, tmp_path, dataset=dataset, steps=1, progress=False)
    last = train(config, None, tmp_path, dataset=dataset, steps=30, resume=True, progress=False)
    assert set(first["final_losses"]) == {"l1", "perceptual", "gan", "D"}
    assert last["final_losses"]["l1"] < 0.6 * first["final_losses"]["l1"]
    assert last["final_losses"]["perceptual"] < first["final_losses"]["perceptual"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["start_step"] == 1 and summary["status"] == "completed"
    assert summary["weights"][0]["network"] == "vgg19"
    assert (tmp_path / "samples" / "step_00000030.png").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.fixture(autouse=True, scope="module")
def _test_generators():
    """This module's tiny generators, registered while its tests run: the module is imported twice in a full
    run (``test_distributed`` imports its helpers), and a name registered twice is an error."""
    registry.generator_names()                     # the real models first
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._GENERATORS, "test_nan_after", lambda: NaNAfter())
        patch.setitem(registry._GENERATORS, "test_tiny_flow", lambda: TinyFlow())
        yield


class NaNAfter(Generator):
    """Tiny generator whose output turns NaN from the ``bad``-th training forward on."""

    calls = 0
    bad = 5

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3 + 36, 3, 3, padding=1)

    def generate(self, source_image, source_heatmaps, target_heatmaps):
        NaNAfter.calls += 1
        image = torch.tanh(self.conv(torch.cat([source_image, source_heatmaps, target_heatmaps], 1)))
        if NaNAfter.calls >= NaNAfter.bad:
            image = image * float("nan")
        return GeneratorOutput(image=image)




def test_non_finite_loss_stops_with_step_and_loss_and_keeps_the_last_checkpoint(data, tmp_path):
    NaNAfter.calls = 0
    config = tiny_config("model={name: test_nan_after}", "train.checkpoint_every=2")
    with pytest.raises(TrainingError, match=r"step 5: loss 'l1' is nan .*step_00000004"):
        train(config, data, tmp_path, steps=10, progress=False)
    assert [p.name for p in C.list_checkpoints(tmp_path / "checkpoints")] == ["step_00000002", "step_00000004"]
    model = load_generator(tmp_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "step 5" in summary["error"] and summary["steps"] == 4


def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(data, tmp_path):
    config = tiny_config("train.checkpoint_every=5", "train.keep_last=5")
    train(config, data, tmp_path / "straight", steps=10, progress=False)
    train(config, data, tmp_path / "split", steps=5, progress=False)
    resumed = train(None, data, tmp_path / "split", steps=10, resume=True, progress=False)
    assert resumed["start_step"] == 5 and resumed["steps"] == 10
    assert_identical(tmp_path / "straight" / "checkpoints" / "step_00000010",
                     tmp_path / "split" / "checkpoints" / "step_00000010")


def test_keep_last_n(data, tmp_path):
    train(tiny_config("train.checkpoint_every=1", "train.keep_last=2", "loss.perceptual=0"), data, tmp_path,
          steps=5, progress=False)
    assert [p.name for p in C.list_checkpoints(tmp_path / "checkpoints")] == ["step_00000004", "step_00000005"]


def write_preset(path: Path, *extra: str) -> Path:
    from posetransfer.config import dump_config

    path.write_text(dump_config(tiny_config(*extra)))
    return path


def test_sigkill_during_training_loses_only_the_steps_since_the_last_checkpoint(data, tmp_path):
    preset = write_preset(tmp_path / "tiny.yaml", "train.checkpoint_every=1", "train.keep_last=3",
                          "loss.perceptual=0", "optim.iterations=25", "optim.decay_start=10")
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "posetransfer", "train", "--preset", str(preset), "--data", str(data),
               "--out", str(run), "--steps", "25", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "checkpoints" / "step_00000003").exists():
            time.sleep(0.02)
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(np.random.default_rng(int(time.time())).uniform(0.0, 0.3))   # somewhere in a step or a save
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # no corrupt checkpoint is left: every step_* folder verifies, only *.tmp debris may remain
    folders = C.list_checkpoints(run / "checkpoints")
    assert folders
    for folder in folders:
        C.verify(folder)
    last = int(folders[-1].name.split("_")[1])
    summary = train(None, data, run, steps=25, resume=True, progress=False)
    assert summary["start_step"] == last                  # resumed from the newest checkpoint on disk
    straight = train(load_config(preset), data, tmp_path / "straight", steps=25, progress=False)
    assert straight["steps"] == summary["steps"] == 25
    assert_identical(run / "checkpoints" / "step_00000025", tmp_path / "straight" / "checkpoints" / "step_00000025")


class TinyFlow(Generator):
    """Stand-in flow model: a flow net (one conv) and an image net; the image is the warped source."""

    def __init__(self) -> None:
        super().__init__()
        self.flow_nets = nn.Conv2d(36, 2, 3, padding=1)
        self.refine = nn.Conv2d(3, 3, 1)

    def flow_parameters(self):
        return self.flow_nets.parameters()

    def predict_flows(self, source_image, source_heatmaps, target_heatmaps):
        from posetransfer.models.flow import warp

        pooled = nn.functional.avg_pool2d(torch.cat([source_heatmaps, target_heatmaps], 1), 4)
        flow = self.flow_nets(pooled) * 4
        return GeneratorOutput(image=warp(source_image, flow), flows=[flow])

    def generate(self, source_image, source_heatmaps, target_heatmaps):
        out = self.predict_flows(source_image, source_heatmaps, target_heatmaps)
        out.image = torch.tanh(self.refine(out.image))
        return out




def test_flow_stage_trains_only_the_flow_networks_then_full_stage_adds_correctness(data, tmp_path):
    config = tiny_config("model={name: test_tiny_flow}", "train.stage=flow", "loss.correctness=5.0",
                         "loss.regularization=0.01", "train.checkpoint_every=100")
    torch.manual_seed(0)
    before = TinyFlow().state_dict()        # the trainer builds the model with the same seed
    summary = train(config, data, tmp_path / "stage1", steps=3, progress=False)
    assert set(summary["final_losses"]) == {"correctness", "regularization"}
    after = load_generator(tmp_path / "stage1").state_dict()
    assert not torch.equal(after["flow_nets.weight"], before["flow_nets.weight"])
    assert torch.equal(after["refine.weight"], before["refine.weight"])
    # stage 2 starts from stage 1 and adds the correctness loss to the image losses
    full = tiny_config("model={name: test_tiny_flow}", "loss.correctness=1.0", f"train.init={tmp_path / 'stage1'}",
                       "loss.perceptual=0")
    summary = train(full, data, tmp_path / "stage2", steps=2, progress=False)
    assert {"l1", "gan", "correctness", "D"} <= set(summary["final_losses"])


def test_train_command_end_to_end_and_its_errors(data, tmp_path, capsys):
    preset = write_preset(tmp_path / "tiny.yaml", "train.checkpoint_every=2", "loss.perceptual=0")
    run = tmp_path / "run"
    args = ["train", "--preset", str(preset), "--data", str(data), "--out", str(run), "--no-progress"]
    assert main(args + ["--steps", "3", "--set", "optim.grad_clip=1.0", "--set", "optim.d_lr_ratio=0.5"]) == 0
    assert "checkpoint" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["checkpoint"].endswith("step_00000003")
    assert load_config(run / "config.yaml")["optim"]["grad_clip"] == 1.0
    assert (run / "train.log").read_text().strip()
    # starting again into a run that has checkpoints needs --resume
    assert main(args + ["--steps", "4"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["start_step"] == 3
    assert main(args + ["--set", "optim.warmup=5"]) == 2
    assert "error: unknown config key 'optim.warmup'" in capsys.readouterr().err
    assert main(["train", "--preset", "patn-market", "--data", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "r2"), "--steps", "1", "--no-progress"]) == 2
    assert "missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Speed settings: device settings, layout, extras only on image steps, torch.compile, the time estimate
# ------------------------------------------------------------------------------------------------
def test_device_settings_use_amp_cudnn_and_pinned_non_blocking_copies_only_on_cuda():
    """What a GPU run would use (checked without a GPU: the settings are a function of device and config)."""
    from posetransfer.train import _to_device, device_settings

    cfg = tiny_config("train.amp=true", "train.compile=inductor")["train"]
    on_cpu = device_settings(torch.device("cpu"), cfg)
    on_gpu = device_settings(torch.device("cuda", 0), cfg)
    assert (on_cpu.amp, on_cpu.cudnn_benchmark, on_cpu.pin_memory, on_cpu.non_blocking) == (False,) * 4
    assert (on_gpu.amp, on_gpu.cudnn_benchmark, on_gpu.pin_memory, on_gpu.non_blocking) == (True,) * 4
    assert on_cpu.compile == on_gpu.compile == "inductor"
    assert device_settings(torch.device("cuda", 0), tiny_config("train.amp=false")["train"]).amp is False
    assert device_settings(torch.device("cpu"), tiny_config()["train"]).compile is None
    batch = {"image": torch.ones(1, 3, 2, 2), "name": "x"}
    moved = _to_device(batch, torch.device("cpu"), non_blocking=True)
    assert torch.equal(moved["image"], batch["image"]) and moved["name"] == "x"


def test_the_loop_applies_its_device_settings(data, tmp_path, monkeypatch):
    """The settings reach the code that uses them: with a CUDA-like settings object (forced on this CPU-only
    machine) the DataLoader is asked for pinned memory, every batch is copied with non_blocking=True,
    cudnn.benchmark is switched on and the generator goes through torch.compile with the chosen backend."""
    import torch.utils.data as tud

    import posetransfer.train as T

    from posetransfer.training.build import DeviceSettings

    gpu_like = DeviceSettings(amp=False, cudnn_benchmark=True, pin_memory=True, non_blocking=True,
                                compile="aot_eager", channels_last=None)
    monkeypatch.setattr(T, "device_settings", lambda device, cfg: gpu_like)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    pinned, copies, compiled = [], [], []
    real_loader, real_to_device, real_compile = tud.DataLoader, T._to_device, torch.compile

    def loader(*args, **kwargs):
        pinned.append(kwargs.get("pin_memory"))
        kwargs["pin_memory"] = False       # nothing to pin for without an accelerator
        return real_loader(*args, **kwargs)

    monkeypatch.setattr(tud, "DataLoader", loader)
    monkeypatch.setattr(T, "_to_device", lambda batch, device, non_blocking=False: (
        copies.append(non_blocking), real_to_device(batch, device, non_blocking))[1])
    monkeypatch.setattr(torch, "compile", lambda model, **kw: (compiled.append(kw.get("backend")),
                                                               real_compile(model, **kw))[1])
    summary = train(tiny_config("train.checkpoint_every=100"), data, tmp_path, steps=2, progress=False)
    assert summary["status"] == "completed"
    assert pinned and all(pinned) and copies == [True, True] and compiled == ["aot_eager"]
    assert torch.backends.cudnn.benchmark is True


def test_channels_last_is_automatic_on_cpu_for_models_without_instance_norm():
    from posetransfer.models.registry import build_generator
    from posetransfer.training.build import use_channels_last

    bn = build_generator("patn", ngf=8, n_blocks=1, norm="batch")
    inorm = build_generator("patn", ngf=8, n_blocks=1, norm="instance")
    cpu_device, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert use_channels_last(bn, cpu_device, None) and not use_channels_last(inorm, cpu_device, None)
    assert not use_channels_last(bn, gpu, None)                       # not measured on a GPU: off unless asked
    assert use_channels_last(inorm, gpu, True) and not use_channels_last(bn, cpu_device, False)


# no dropout: its random masks follow the memory order, so the two layouts would drop different elements
BATCH_NORM = ["model.norm=batch", "discriminators.appearance.norm=batch", "discriminators.shape.norm=batch",
              "model.dropout=0.0", "discriminators.appearance.dropout=0.0", "train.checkpoint_every=3",
              "train.keep_last=5"]


def test_channels_last_training_equals_the_plain_layout_and_resumes_bit_for_bit(data, tmp_path):
    """Batch-norm models train in channels_last on CPU (auto): the first step's losses equal the plain
    layout's up to float rounding (later steps drift apart as any two float orders do under Adam), the
    weights after it differ by no more than Adam's first step can flip (2 lr), and a resumed run still
    equals the uninterrupted one exactly."""
    auto = train(tiny_config(*BATCH_NORM), data, tmp_path / "auto1", steps=1, progress=False)
    plain = train(tiny_config(*BATCH_NORM, "train.channels_last=false"), data, tmp_path / "plain1", steps=1,
                  progress=False)
    for name, value in auto["final_losses"].items():
        assert value == pytest.approx(plain["final_losses"][name], rel=1e-4, abs=1e-6), name
    lr = tiny_config()["optim"]["lr"]
    a, b = (load_generator(tmp_path / run) for run in ("auto1", "plain1"))
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, rtol=0, atol=2.5 * lr), key
    train(tiny_config(*BATCH_NORM), data, tmp_path / "auto", steps=6, progress=False)
    train(tiny_config(*BATCH_NORM), data, tmp_path / "split", steps=3, progress=False)
    train(None, data, tmp_path / "split", steps=6, resume=True, progress=False)
    assert_identical(tmp_path / "auto" / "checkpoints" / "step_00000006",
                     tmp_path / "split" / "checkpoints" / "step_00000006")


def test_generator_extras_are_asked_for_only_on_image_steps(data, tmp_path, monkeypatch):
    """Attention maps kept for the image grid are logging work: a step that writes no image does not pay."""
    asked: list[bool] = []
    real_forward = Generator.forward

    def forward(self, *args, return_extras=False):
        asked.append(return_extras)
        return real_forward(self, *args, return_extras=return_extras)

    monkeypatch.setattr(Generator, "forward", forward)
    train(tiny_config("train.image_every=3", "train.checkpoint_every=100"), data, tmp_path, steps=7,
          progress=False)
    assert asked == [False, False, True, False, False, True, True]   # images at steps 3, 6 and the last (7)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_00000003.png", "step_00000006.png", "step_00000007.png"]


def test_compile_option_trains_through_torch_compile(data, tmp_path, monkeypatch):
    """train.compile: the generator goes through torch.compile with that backend (aot_eager here: dynamo and
    AOT autograd without a C++ compiler; inductor is the one to use on a GPU)."""
    backends: list[str] = []
    real_compile = torch.compile

    def compile_(model, **kwargs):
        backends.append(kwargs.get("backend"))
        return real_compile(model, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_)
    summary = train(tiny_config("train.compile=aot_eager", "train.checkpoint_every=100"), data, tmp_path,
                    steps=3, progress=False)
    assert backends == ["aot_eager"] and summary["status"] == "completed" and summary["steps"] == 3
    assert all(math.isfinite(v) for v in summary["final_losses"].values())


def test_time_estimate_is_logged_after_the_warm_up_and_loader_workers_leave_the_cores(data, tmp_path):
    from posetransfer import cpu
    from posetransfer.train import ESTIMATE_STEPS, WARMUP_STEPS

    steps = WARMUP_STEPS + ESTIMATE_STEPS + 2
    summary = train(tiny_config("train.workers=4", "train.checkpoint_every=100"), data, tmp_path, steps=steps,
                    progress=False)
    log = (tmp_path / "train.log").read_text()
    assert f"s per step after warm-up (steps {WARMUP_STEPS + 1}-{WARMUP_STEPS + ESTIMATE_STEPS}): 2 steps to go, " \
           "about" in log
    threads = torch.get_num_threads()
    assert summary["cpu_threads"] == threads
    assert summary["loader_workers"] == cpu.loader_workers(4, "cpu", threads) <= max(0, cpu.available_cpus() - threads)
