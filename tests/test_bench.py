"""posetransfer.bench and ``posetransfer bench``: the table is written, and each measuring tool measures what
it claims on cases whose answer is known (FLOPs of a conv and of an attention, a known allocation)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from posetransfer import bench
from posetransfer.cli import main
from posetransfer.models.base import Generator, GeneratorOutput


def test_bench_quick_writes_a_table_for_the_requested_models(tmp_path, capsys):
    out, raw = tmp_path / "bench.md", tmp_path / "bench.json"
    code = main(["bench", "--quick", "--models", "patn", "pona", "--out", str(out), "--json", str(raw)])
    assert code == 0
    table = out.read_text()
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = lines[0]
    for column in ("Params (M)", "GFLOP / img", "img/s b1 plain / fast", "img/s b2 plain / fast",
                   "Peak mem b1 (MiB) plain / fast", "Train step G+D (s, b2)", "Paper speed"):
        assert column in header
    assert len(lines) == 2 + 2                       # header, rule, patn, pona
    assert lines[2].startswith("| patn") and lines[3].startswith("| pona")
    assert "load average" in table
    result = json.loads(raw.read_text())
    for row in result["rows"]:
        assert row["size"] == [128, 64]
        assert row["params"] > 0 and row["flops_per_image"] > 0
        assert all(v > 0 for v in row["throughput"].values()) and all(v > 0 for v in row["throughput_fast"].values())
        assert row["train_step_s"] > 0
        assert row["memory"]["peak_mib"] >= 0
    # the numbers in the table are the JSON's
    patn = result["rows"][0]
    assert f"{patn['flops_per_image'] / 1e9:.2f}" in lines[2]


def test_bench_unknown_model_is_a_one_line_error(capsys):
    assert main(["bench", "--quick", "--models", "patn", "nosuchnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nosuchnet" in err and "\n" not in err


def test_published_figures_sit_beside_the_full_size_rows():
    specs = {s.label: s for s in bench.default_specs()}
    assert {"PATN (9 PATBs)", "APATN (5 APATBs)", "PoNA (3 blocks)", "PoNA (2 blocks)"} <= set(specs)
    with torch.device("meta"):
        pona2 = specs["PoNA (2 blocks)"].build("deepfashion")
    assert bench.published_for(pona2)["params_m"] == 23.31
    row = {"label": "x", "size": [256, 176], "size_name": "deepfashion", "norm": "Instance", "params": 34_329_356,
           "flops_per_image": 1e9, "throughput": {1: 2.0}, "throughput_fast": {1: 3.0},
           "published": {"params_m": 34.33, "speed": "105.18 fps [PoNA T-II]"}, "device": "cpu"}
    table = bench.format_table({"machine": {"loadavg": [1.0, 1.0, 1.0]}, "loadavg_end": [1.0, 1.0, 1.0],
                                "options": {"batches": [1], "memory": "none", "train": False, "repeats": 3,
                                            "device": "cpu"}, "rows": [row]})
    assert "| x | 256×176 | Instance | 34.33 | 34.33 | 1.00 | 2.00 / 3.00 | 105.18 fps [PoNA T-II] |" in table


def test_flop_counter_counts_convolutions_exactly():
    class OneConv(Generator):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def generate(self, image, src, tgt):
            return GeneratorOutput(image=self.conv(image))

    inputs = bench.make_inputs((16, 12), 1)
    assert bench.count_flops(OneConv(), inputs) == 2 * 8 * 3 * 9 * 16 * 12


def test_flop_counter_sees_the_attention_inside_sdpa():
    """FlopCounterMode alone reports 0 for the fused CPU SDPA kernel; count_flops must not."""
    n, d_qk, d_v = 16 * 12, 8, 24

    class Attn(Generator):
        def generate(self, image, src, tgt):
            q = src.flatten(2).transpose(1, 2)[..., :d_qk]
            v = tgt.flatten(2).transpose(1, 2)[..., :d_v].contiguous()
            o = nn.functional.scaled_dot_product_attention(q, q, v, scale=1.0)
            return GeneratorOutput(image=o)

    inputs = bench.make_inputs((16, 12), 1, pose_channels=24)
    assert bench.count_flops(Attn(), inputs) == 2 * n * n * d_qk + 2 * n * n * d_v


def test_peak_memory_sees_a_known_allocation():
    """In a fresh process (as measure_memory runs it): in the long-lived test process glibc may hand back
    pages it kept resident from earlier tests, and the high-water mark would not move."""
    code = ("import json, torch\n"
            "from posetransfer import bench\n"
            "def allocate_64mib():\n"
            "    x = torch.ones(16 * 2 ** 20)   # 64 MiB, touched\n"
            "    return float(x[-1])\n"
            "print(json.dumps(bench.peak_memory_of(allocate_64mib, warmup=0)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 60 <= result["peak_mib"] <= 80, result


def test_memory_subprocess_measures_a_forward():
    spec = bench.MemorySpec(name="patn", config={"ngf": 8, "n_blocks": 1}, dataset="market", size=(128, 64),
                            batch=1, threads=1)
    result = bench.measure_memory(spec)
    assert result["method"].startswith("RSS")
    assert result["process_peak_mib"] > result["peak_mib"] >= 0
    assert result["weights_mib"] == pytest.approx(sum(
        p.numel() for p in bench.ModelSpec("patn", "patn", spec.config).build("market").parameters()) * 4 / 2 ** 20)


def test_train_step_updates_generator_and_discriminators():
    torch.manual_seed(0)
    model = bench.ModelSpec("patn", "patn", {"ngf": 8, "n_blocks": 1}).build("market")
    step = bench.make_train_step(model, "market", (32, 16), 2, config={"ngf": 8})
    before = [p.detach().clone() for p in model.parameters()]
    loss = step()
    assert torch.isfinite(torch.tensor(loss))
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed == len(before)


def test_data_throughput_on_a_synthetic_dataset(tmp_path):
    from posetransfer.data.synth import generate_dataset

    root = generate_dataset(tmp_path / "synth", size="market", identities=3, poses=3, test_identities=1)
    result = bench.data_throughput(root, workers=0, batch_size=2, batches=3)
    assert result["samples"] == 6 and result["samples_per_s"] > 0
    assert result["dataset_size"] == 2 * 3 * 2   # 2 train identities × 3·2 ordered pairs
