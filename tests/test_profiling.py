"""The per-component profile of a training step: every model of the step is found, its forward and its
backward are charged to it, and the parts add up to no more than the step."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from posetransfer import profiling as P
from posetransfer.config import load_config
from posetransfer.train import train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, make_dataset  # noqa: E402  (shared tiny dataset writer)

pytestmark = pytest.mark.usefixtures("one_thread")
MARK = "test:step"


def test_a_real_training_step_splits_into_g_each_d_vgg_data_and_the_rest(tmp_path):
    data = make_dataset(tmp_path / "data")
    config = load_config("patn-market", TINY + ["train.log_every=100", "train.image_every=100",
                                                "train.checkpoint_every=100"])
    import posetransfer.train as T

    real_next = T._next_batch

    def marked(batches):
        with torch.profiler.record_function(MARK):
            pass
        return real_next(batches)

    T._next_batch = marked
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof, \
                P.component_scopes(P.training_classifier(list(config["discriminators"]))):
            train(config, data, tmp_path / "run", steps=4, progress=False)
    finally:
        T._next_batch = real_next
    events = prof.events()
    marks = P.step_windows(events, MARK)
    assert len(marks) == 4
    # the data loader's fetches: one per step, plus the one that ends an epoch (6 pairs = 3 batches); hence a
    # mark of one's own for step boundaries
    assert len(P.step_windows(events)) == 5
    summary = P.summarize(events, 2, start_us=marks[1], end_us=marks[3])   # steps 2 and 3
    assert list(summary["components"]) == ["G", "D.appearance", "D.shape", "VGG"]
    for name, part in summary["components"].items():
        assert part["forward_s"] > 0 and part["backward_s"] > 0, name   # the frozen VGG: input gradient only
        assert part["total_s"] == pytest.approx(part["forward_s"] + part["backward_s"])
    parts = sum(p["total_s"] for p in summary["components"].values()) + summary["data_s"] + summary["optimizers_s"]
    assert summary["data_s"] > 0 and summary["optimizers_s"] > 0
    assert parts <= summary["step_s"] * 1.05               # nothing counted twice (nested scopes count once)
    assert summary["other_s"] == pytest.approx(max(0.0, summary["step_s"] - parts), abs=1e-9)
    ops = [o["op"] for o in P.top_ops(events, 2, start_us=marks[1], end_us=marks[3])]
    assert any("convolution" in op for op in ops)
    rest = {o["op"] for o in P.top_level_ops(events, 2, start_us=marks[1], end_us=marks[3], limit=50)}
    assert "aten::l1_loss" in rest and not any(op.startswith(P.SCOPE) for op in rest)


def test_nested_calls_of_one_component_count_once_and_unknown_modules_not_at_all():
    class Inner(nn.Module):
        arch = "inner"
        pose_channels = 1

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    class Outer(Inner):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(super().forward(x))

    model = Outer()
    classify = P.training_classifier([])
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof, P.component_scopes(classify):
        model(x).sum().backward()
        nn.Conv2d(1, 1, 1)(x)                                   # not a component: not in the summary
    summary = P.summarize(prof.events(), 1)
    assert list(summary["components"]) == ["G"]
    assert summary["components"]["G"]["backward_s"] > 0
    assert summary["components"]["G"]["forward_s"] <= summary["step_s"]
    with pytest.raises(ValueError, match="no profiler events"):
        P.summarize(prof.events(), 1, start_us=1e18)
