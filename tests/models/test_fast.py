"""Every inference optimisation of posetransfer.models.fast gives the plain model's outputs.

Tolerances (outputs are tanh images in [-1, 1]):
* BN folding, channels_last, pre-packed oneDNN convolutions with fused activations, attention
  implementations, their combination: max |Δ| ≤ 1e-5 (float32 rounding: folding reorders one multiply-add
  per channel, channels_last, oneDNN's blocked kernels and the chunked / fused attention change summation
  order);
* torch.compile (inductor, tiny stand-in model — compiling a real generator cold takes ~1 min here):
  max |Δ| ≤ 1e-5;
* bf16 (opt-in, *does* change results; a CPU with bf16 instructions): max |Δ| ≤ 0.1, mean |Δ| ≤ 0.02.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from posetransfer.errors import ModelError
from posetransfer.models import fast
from posetransfer.models.base import Generator, GeneratorOutput
from posetransfer.models.registry import build_generator, generator_names

TOL = 1e-5
SMALL = (64, 32)   # any multiple of 4 works; small keeps the suite fast
TINY = {"patn": {"ngf": 8, "n_blocks": 2}, "apatn": {"ngf": 8, "n_blocks": 2}, "pona": {"ngf": 8, "n_blocks": 2},
        "resnet": {"ngf": 8, "n_blocks": 2},
        "flow": {"ngf": 8, "flow_ngf": 8, "max_channels": 32, "flow_max_channels": 32},
        "gfla": {"ngf": 4, "max_channels": 16, "flow_ngf": 4, "flow_max_channels": 8}}


def _randomize(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and non-zero attention gates (PoNA's γ, β start at 0, hiding the attention)."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
        for name in ("gamma", "beta"):
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter):
                p.data.fill_(0.7)
    return model.eval()


def _model(name: str, preset: str = "market", **extra) -> Generator:
    torch.manual_seed(0)
    return _randomize(build_generator(name, dataset=preset, **{**TINY.get(name, {"ngf": 8}), **extra}))


def make_inputs(batch: int = 1, size: tuple[int, int] = SMALL):
    gen = torch.Generator().manual_seed(1)
    h, w = size
    return (torch.rand(batch, 3, h, w, generator=gen) * 2 - 1, torch.rand(batch, 18, h, w, generator=gen),
            torch.rand(batch, 18, h, w, generator=gen))


def _plain(model, inputs, impl: str | None = None):
    ctx = fast.attention_impl(impl) if impl else torch.no_grad()
    with torch.no_grad(), ctx:
        return model(*inputs)


def _maxdiff(a, b) -> float:
    return float((a - b).abs().max())


# ---- attention implementations -------------------------------------------------------------------
@pytest.mark.parametrize("d_qk,d_v", [(16, 64), (64, 64), (96, 32)])
@pytest.mark.parametrize("scale", [1.0, None])
def test_attention_implementations_agree(d_qk, d_v, scale):
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 300, d_qk, generator=gen), torch.randn(2, 280, d_qk, generator=gen)
    v = torch.randn(2, 280, d_v, generator=gen)
    reference = fast.explicit_attention(q, k, v, scale)
    manual = torch.softmax(q @ k.transpose(1, 2) * (d_qk ** -0.5 if scale is None else scale), -1) @ v
    assert _maxdiff(reference, manual) <= TOL
    for impl in ("sdpa", "chunked", "padded", "auto"):
        # chunk budget so small that the 300 query rows run in several chunks
        out = fast.attention(q, k, v, scale=scale, impl=impl, chunk_bytes=2 * 280 * 4 * 40)
        assert out.shape == (2, 300, d_v)
        assert _maxdiff(out, reference) <= TOL, impl


def test_chunked_attention_is_bitwise_the_explicit_product_per_row():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 512, 8, generator=gen), torch.randn(1, 512, 8, generator=gen),
               torch.randn(1, 512, 32, generator=gen))
    out = fast.chunked_attention(q, k, v, 1.0, chunk_bytes=512 * 4 * 64)  # 64-row chunks
    assert _maxdiff(out, fast.explicit_attention(q, k, v, 1.0)) <= 1e-6


def test_unknown_attention_implementation_is_a_model_error():
    with pytest.raises(ModelError, match="unknown attention implementation 'flash2'"):
        with fast.attention_impl("flash2"):
            pass


@pytest.mark.parametrize("name,calls_per_block", [("apatn", 1), ("pona", 2)])
def test_attention_switch_reaches_every_attention_and_keeps_outputs(name, calls_per_block):
    model = _model(name, "deepfashion", n_blocks=1)
    inputs = make_inputs(batch=1)
    with torch.no_grad():
        reference = model(*inputs, return_extras=True).image   # explicit HW×HW matrices (model's own path)
    for impl in fast.ATTENTION_IMPLS:
        with torch.no_grad(), fast.attention_impl(impl, chunk_bytes=32 * 128 * 4) as mode:  # 4 chunks of 32 rows
            out = model(*inputs)
        assert mode.calls == calls_per_block, impl
        assert _maxdiff(out, reference) <= TOL, impl


# ---- BatchNorm folding ---------------------------------------------------------------------------
def test_fold_batchnorm_is_exact_and_removes_every_conv_bn_pair():
    model = _model("patn", "market")
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    inputs = make_inputs(batch=2)
    reference = _plain(model, inputs)
    folded = copy.deepcopy(model)
    assert fast.fold_batchnorm(folded) == n_bn
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert _maxdiff(_plain(folded, inputs), reference) <= TOL


def test_instance_norm_is_not_folded():
    model = _model("patn", "deepfashion")
    assert fast.count_instance_norms(model) > 0
    assert fast.fold_batchnorm(model) == 0


def test_fold_batchnorm_refuses_training_mode():
    model = _model("patn", "market").train()
    with pytest.raises(ModelError, match="eval mode"):
        fast.fold_batchnorm(model)


# ---- pre-packed oneDNN convolutions --------------------------------------------------------------
needs_onednn = pytest.mark.skipif(not fast.prepack_available(), reason="torch built without oneDNN")


@needs_onednn
def test_prepacked_convolutions_fuse_activations_and_keep_outputs():
    model = _model("patn", "market")
    inputs = make_inputs(batch=2)
    reference = _plain(model, inputs)
    packed = copy.deepcopy(model)
    fast.fold_batchnorm(packed)
    n_convs = sum(type(m) in (nn.Conv2d, nn.ConvTranspose2d) for m in model.modules())
    assert fast.prepack_convolutions(packed) == n_convs
    kinds = [m.activation for m in packed.modules() if isinstance(m, fast.PackedConv2d)]
    assert kinds.count("tanh") == 1 and kinds.count("relu") >= 3 + 2 + 2   # encoders, decoder, blocks
    assert not any(type(m) in (nn.Conv2d, nn.ConvTranspose2d, nn.ReLU, nn.Tanh) for m in packed.modules())
    with torch.inference_mode():
        assert _maxdiff(packed(*inputs), reference) <= TOL
        assert _maxdiff(packed(*make_inputs(batch=1)), _plain(model, make_inputs(batch=1))) <= TOL  # new shape
    # with autograd recording, the plain ops run (oneDNN's packed path has no backward)
    x = inputs[0].clone().requires_grad_(True)
    out = packed(x, *inputs[1:])
    out.sum().backward()
    assert _maxdiff(out.detach(), reference) <= TOL and x.grad is not None


# ---- optimize_for_inference ----------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    {"channels_last": True, "fold_bn": False, "prepack": False},
    {"channels_last": False, "fold_bn": True, "prepack": False},
    pytest.param({"channels_last": False, "fold_bn": False, "prepack": True}, marks=needs_onednn),
])
def test_each_option_alone_keeps_patn_outputs(options):
    model = _model("patn", "market")
    inputs = make_inputs(batch=2)
    out = fast.optimize_for_inference(model, **options)(*inputs)
    assert _maxdiff(out, _plain(model, inputs)) <= TOL
    assert out.is_contiguous()


@pytest.mark.parametrize("name", sorted(TINY))
def test_optimize_for_inference_keeps_every_generator_output(name):
    if name not in generator_names():
        pytest.fail(f"generator {name!r} is not registered")
    preset = "deepfashion" if name == "apatn" else "market"
    model = _model(name, preset)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = make_inputs(batch=2)
    reference = _plain(model, inputs, impl="explicit")
    optimized = fast.optimize_for_inference(model)
    assert _maxdiff(optimized(*inputs), reference) <= TOL
    extras = optimized(*inputs, return_extras=True)
    assert isinstance(extras, GeneratorOutput) and _maxdiff(extras.image, reference) <= TOL
    # the original is untouched: same weights, BN layers still there
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimized.arch == name


@pytest.mark.parametrize("name", ["patn", "pona", "gfla", "flow"])
def test_instance_norm_presets_run_their_norms_channels_last_with_the_same_images(name):
    """DeepFashion presets (instance norm everywhere): every InstanceNorm becomes a channels-last one."""
    model = _model(name, "deepfashion")
    inputs = make_inputs(batch=2)
    reference = _plain(model, inputs, impl="explicit")
    optimized = fast.optimize_for_inference(model)
    norms = [m for m in optimized.modules() if isinstance(m, fast.ChannelsLastInstanceNorm)]
    assert norms and optimized.channels_last_instance_norms == len(norms) == fast.count_instance_norms(model)
    assert _maxdiff(optimized(*inputs), reference) <= TOL
    assert optimized.description()["channels_last_instance_norms"] == len(norms)


@pytest.mark.parametrize("affine", [False, True])
def test_channels_last_instance_norm_equals_torchs_and_falls_back_on_other_layouts(affine):
    norm = nn.InstanceNorm2d(6, affine=affine).eval()
    if affine:
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(3, 6, 7, 5) * 3 + 1
    for relu in (False, True):
        module = fast.ChannelsLastInstanceNorm(norm, relu=relu)
        want = torch.relu(norm(x)) if relu else norm(x)
        with torch.inference_mode():
            got = module(x.contiguous(memory_format=torch.channels_last))
            assert got.is_contiguous(memory_format=torch.channels_last)
            assert _maxdiff(got, want) <= TOL
            assert _maxdiff(module(x), want) <= TOL                  # NCHW input: torch's own norm


def test_micro_batches_give_the_same_images():
    model = _model("pona", "market", n_blocks=1)
    inputs = make_inputs(batch=5)
    out = fast.optimize_for_inference(model, max_batch=2)(*inputs)
    assert out.shape[0] == 5 and _maxdiff(out, _plain(model, inputs)) <= TOL


def test_apatn_decodes_one_sample_at_a_time_on_cpu_with_the_same_images():
    model = _model("apatn", "deepfashion")
    inputs = make_inputs(batch=3)
    reference = _plain(model, inputs)
    optimized = fast.optimize_for_inference(model)
    assert optimized.per_sample == ("stream1_up",) and isinstance(optimized.model.stream1_up, fast.PerSample)
    calls = []
    optimized.model.stream1_up.module.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    assert _maxdiff(optimized(*inputs), reference) <= TOL
    assert calls == [1, 1, 1]
    batched = fast.optimize_for_inference(model, per_sample=False)
    assert batched.per_sample == () and not isinstance(batched.model.stream1_up, fast.PerSample)
    assert _maxdiff(batched(*inputs), reference) <= TOL
    # PATN's decoder and APATN's transposed one are small: nothing to split
    assert fast.optimize_for_inference(_model("patn")).per_sample == ()
    assert fast.optimize_for_inference(_model("apatn", "deepfashion", decoder="transposed")).per_sample == ()


def test_optimized_model_is_inference_only():
    optimized = fast.optimize_for_inference(_model("patn"))
    with pytest.raises(ModelError, match="inference-only"):
        optimized.train()
    with pytest.raises(ModelError, match="already optimized"):
        fast.optimize_for_inference(optimized)
    with pytest.raises(ModelError, match="precision"):
        fast.optimize_for_inference(_model("patn"), precision="fp8")


needs_bf16 = pytest.mark.skipif(not fast.cpu_bf16_native(), reason="this CPU has no bf16 instructions")


@needs_bf16
@pytest.mark.parametrize("arch", ["patn", "pona", "apatn"])
def test_bf16_runs_in_bf16_and_is_close(arch):
    model = _model(arch, "market")
    inputs = make_inputs(batch=2)
    optimized = fast.optimize_for_inference(model, precision="bf16")
    out = optimized(*inputs)
    assert out.dtype == torch.float32 and out.shape == inputs[0].shape
    plain = _plain(model, inputs)
    assert _maxdiff(out, plain) <= 0.1
    assert float((out - plain).abs().mean()) <= 0.02
    assert 0 < float((out - plain).abs().max())            # it really computed in bf16
    packed = [m for m in optimized.modules() if isinstance(m, fast.PackedConv2d)]
    assert packed and all(m.weight.dtype == torch.bfloat16 for m in packed)
    description = optimized.description()
    assert description["precision"] == "bf16" and description["winograd_convolutions"] == 0
    assert next(model.parameters()).dtype == torch.float32      # the original is left as it is
    extras = optimized.generate(*inputs)                         # attention maps and matrices: float32 too
    tensors = [extras.image, *extras.attention, *[t for v in extras.extras.values()
                                                  for t in (v if isinstance(v, list) else [v])
                                                  if isinstance(t, torch.Tensor)]]
    assert len(tensors) > 1 and all(t.dtype == torch.float32 for t in tensors)


def test_bf16_is_refused_where_it_would_be_emulated_or_cannot_apply(monkeypatch):
    model = _model("patn", "market")
    with pytest.raises(ModelError, match="drop --no-fast"):
        fast.prepare_for_inference(model, fast=False, precision="bf16")
    with pytest.raises(ModelError, match="not available for the gfla generator"):
        fast.prepare_for_inference(_model("gfla", "market"), precision="bf16")
    monkeypatch.setattr(fast, "cpu_bf16_native", lambda: True)
    with pytest.raises(ModelError, match="winograd=True computes in float32"):
        fast.optimize_for_inference(model, precision="bf16", winograd=True)
    monkeypatch.setattr(fast, "cpu_bf16_native", lambda: False)
    with pytest.raises(ModelError, match="bf16 instructions"):
        fast.prepare_for_inference(model, precision="bf16")
    _, description = fast.prepare_for_inference(model)
    assert description["precision"] == "fp32"


# ---- torch.compile (tiny stand-in: cold inductor compiles of a real generator take ~1 min) ---------
class _TinyGenerator(Generator):
    """The op mix of a PATB on a few channels: reflect pad, conv, BN, ReLU, sigmoid mask, residual, concat."""

    arch = "tiny"

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4),
                                   nn.ReLU(True))
        self.pose = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(36, 4, 3))
        self.out = nn.Conv2d(8, 3, 1)

    def generate(self, source_image, source_heatmaps, target_heatmaps):
        x = self.image(source_image)
        mask = torch.sigmoid(self.pose(torch.cat((source_heatmaps, target_heatmaps), 1)))
        x = mask * x + x
        return GeneratorOutput(image=torch.tanh(self.out(torch.cat((x, mask), 1))))


def test_compile_keeps_outputs_tiny_model():
    model = _randomize(_TinyGenerator())
    inputs = make_inputs(batch=1)
    compiled = fast.optimize_for_inference(model, compile=True)
    out = compiled(*inputs)
    assert compiled.compile_seconds is not None and compiled.compile_seconds > 0
    assert _maxdiff(out, _plain(model, inputs)) <= TOL


def test_winograd_convolution_equals_the_direct_one_in_chunks_and_strips():
    from posetransfer.models import winograd
    torch.manual_seed(0)
    conv = nn.Conv2d(128, 128, 3).eval()
    module = winograd.WinogradConv2d(conv, "relu")
    for shape in [(3, 128, 10, 8), (1, 128, 34, 18)]:
        x = torch.randn(*shape)
        with torch.inference_mode():
            assert _maxdiff(module(x), torch.relu(conv(x))) <= TOL
    old = winograd.CHUNK_BYTES
    winograd.CHUNK_BYTES = 16 * 128 * 4 * 3          # three tiles per step: strips of tile rows
    try:
        x = torch.randn(2, 128, 12, 10)
        with torch.inference_mode():
            assert _maxdiff(module(x), torch.relu(conv(x))) <= TOL
    finally:
        winograd.CHUNK_BYTES = old
    odd = torch.randn(1, 128, 9, 9)                  # odd output size: the direct convolution
    with torch.inference_mode():
        assert _maxdiff(module(odd), torch.relu(conv(odd))) <= TOL
    assert not winograd.eligible(nn.Conv2d(64, 64, 3)) and not winograd.eligible(nn.Conv2d(128, 128, 3, padding=2))
    assert not winograd.eligible(nn.Conv2d(128, 128, 3, padding=1, padding_mode="reflect"))


def test_winograd_is_chosen_only_for_convolutions_wide_enough_to_pay():
    """PATN's 256→256 blocks keep the direct kernel; its 512-input ones (both datasets) take Winograd."""
    from posetransfer.models import winograd
    assert not winograd.pays(nn.Conv2d(256, 256, 3)) and not winograd.pays(nn.Conv2d(128, 128, 3))
    assert winograd.pays(nn.Conv2d(512, 512, 3)) and winograd.pays(nn.Conv2d(512, 256, 3))
    assert not winograd.pays(nn.Conv2d(512, 512, 3, stride=2))          # not eligible at all
    seq = nn.Sequential(nn.Conv2d(256, 256, 3), nn.ReLU(), nn.Conv2d(256, 512, 3), nn.Conv2d(512, 512, 3)).eval()
    assert fast.prepack_convolutions(seq, winograd=True) == 3
    assert [type(m).__name__ for m in seq] == ["PackedConv2d", "Identity", "WinogradConv2d", "WinogradConv2d"]


def test_winograd_convolution_with_zero_padding_equals_the_direct_one():
    """PoNA's blocks pad inside the convolution (padding=1, zeros): the border is added before the tiles."""
    from posetransfer.models import winograd
    torch.manual_seed(0)
    conv = nn.Conv2d(128, 160, 3, padding=1).eval()
    module = winograd.WinogradConv2d(conv)
    for shape in [(2, 128, 8, 6), (1, 128, 7, 5)]:                 # even: tiles; odd: direct fallback
        x = torch.randn(*shape)
        with torch.inference_mode():
            y = module(x)
            assert y.shape == conv(x).shape and _maxdiff(y, conv(x)) <= TOL


@needs_onednn
def test_full_width_patn_runs_its_blocks_through_winograd_with_the_same_images(monkeypatch):
    """ngf 32 gives PATN's blocks the 128 channels the tiny models lack; with the width rule lowered (the
    real one keeps Winograd to 512-input convolutions, too large for a test) the fast path really swaps
    their 3×3 convolutions for Winograd ones (and only those) and must keep the images."""
    from posetransfer.models import winograd
    from posetransfer.models.winograd import WinogradConv2d
    monkeypatch.setattr(winograd, "MIN_INTENSITY", 0)
    model = _model("patn", "market", ngf=32, n_blocks=1)
    inputs = make_inputs(batch=2)
    reference = _plain(model, inputs)
    optimized = fast.optimize_for_inference(model, winograd=True)
    winograds = [m for m in optimized.modules() if isinstance(m, WinogradConv2d)]
    blocks_3x3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
                  and min(m.in_channels, m.out_channels) >= 128]
    assert len(winograds) == len(blocks_3x3) >= 2                 # a PATB's image-stream convolutions at least
    assert _maxdiff(optimized(*inputs), reference) <= TOL
    direct = fast.optimize_for_inference(model, winograd=False)
    assert not any(isinstance(m, WinogradConv2d) for m in direct.modules())
    assert _maxdiff(direct(*inputs), reference) <= TOL


@needs_onednn
def test_full_width_pona_runs_its_padded_blocks_through_winograd_with_the_same_images(monkeypatch):
    from posetransfer.models import winograd
    from posetransfer.models.winograd import WinogradConv2d
    monkeypatch.setattr(winograd, "MIN_INTENSITY", 0)
    model = _model("pona", "market", ngf=32, n_blocks=1)
    inputs = make_inputs(batch=2)
    reference = _plain(model, inputs, impl="explicit")
    optimized = fast.optimize_for_inference(model, winograd=True)
    assert sum(isinstance(m, WinogradConv2d) for m in optimized.modules()) >= 2
    assert _maxdiff(optimized(*inputs), reference) <= TOL


def test_prepare_for_inference_optimizes_where_it_pays_and_describes_it():
    patn = _model("patn")
    runner, info = fast.prepare_for_inference(patn)
    assert isinstance(runner, fast.InferenceGenerator) and info["fast"] and info["optimized"]
    assert info["folded_batchnorms"] > 0 and "threads" in info and "wait_policy" in info
    plain, info = fast.prepare_for_inference(patn, fast=False)
    assert plain is patn and not info["fast"]
    for name in ("gfla", "flow"):            # measured slower through the rewrites: run as they are
        model = _model(name)
        runner, info = fast.prepare_for_inference(model)
        assert runner is model and info["fast"] and not info["optimized"] and "fast_path_pays" in info["why"]
