"""GFLA's three CUDA ops in pure PyTorch against literal transliterations of their CUDA forward kernels.

Each ``loop_*`` function below is the body of the kernel (``*_kernel.cu`` in RenYurui/Global-Flow-Local-
Attention, read and re-written by hand) run once per CUDA thread, i.e. once per output element, with the
kernel's own index arithmetic, ``floor`` / ``int`` casts, clamps and ``SAFE_DIV``. The vectorised ops of
``posetransfer.models.gfla_ops`` must give the same numbers on small random inputs — flows pointing out of
the image, non-integer and exactly-integer targets, kernel sizes 1, 3 and 5 (and GFLA's 4 for the
resampler) — and their gradients pass ``torch.autograd.gradcheck`` in float64.
"""
from __future__ import annotations

import math

import pytest
import torch

from posetransfer.errors import ModelError
from posetransfer.models.gfla_ops import block_extractor, local_attn_reshape, local_blocks, resample2d

EPS = 1e-8


def safe_div(a: float, b: float) -> float:
    return a / EPS if b == 0 else a / b


# --------------------------------------------------------------------------------------------------
# Literal transliterations (one loop iteration = one CUDA thread)
# --------------------------------------------------------------------------------------------------
def loop_block_extractor(source: torch.Tensor, flow: torch.Tensor, k: int) -> torch.Tensor:
    """kernel_block_extractor_update_output."""
    src, fl = source.tolist(), flow.tolist()
    bs, ds, hs, ws = source.shape
    _, _, hf, wf = flow.shape
    out = torch.zeros(bs, ds, k * hf, k * wf, dtype=torch.float64)
    dim_b, dim_c, dim_h, dim_w = out.shape
    for index in range(out.numel()):
        b = (index // (dim_c * dim_h * dim_w)) % dim_b
        c = (index // (dim_h * dim_w)) % dim_c
        y = (index // dim_w) % dim_h
        x = index % dim_w
        yf, xf = y // k, x // k
        yf_offset, xf_offset = y % k - k // 2, x % k - k // 2
        flow_y = fl[b][1][yf][xf] + yf_offset
        flow_x = fl[b][0][yf][xf] + xf_offset
        dy, dx = flow_y + yf, flow_x + xf
        x_l = max(min(int(math.floor(dx)), ws - 1), 0)
        x_r = max(min(int(math.floor(dx) + 1), ws - 1), 0)
        y_t = max(min(int(math.floor(dy)), hs - 1), 0)
        y_b = max(min(int(math.floor(dy) + 1), hs - 1), 0)
        x_l_p, x_r_p = 1 - (dx - math.floor(dx)), dx - math.floor(dx)
        y_t_p, y_b_p = 1 - (dy - math.floor(dy)), dy - math.floor(dy)
        sample = 0.0
        sample += x_l_p * y_t_p * src[b][c][y_t][x_l]
        sample += x_r_p * y_t_p * src[b][c][y_t][x_r]
        sample += x_l_p * y_b_p * src[b][c][y_b][x_l]
        sample += x_r_p * y_b_p * src[b][c][y_b][x_r]
        out[b, c, y, x] = sample
    return out


def loop_local_attn_reshape(inputs: torch.Tensor, k: int) -> torch.Tensor:
    """kernel_local_attn_reshape_update_output."""
    data = inputs.tolist()
    bs, _, hs, ws = inputs.shape
    out = torch.zeros(bs, 1, k * hs, k * ws, dtype=torch.float64)
    dim_b, dim_c, dim_h, dim_w = out.shape
    for index in range(out.numel()):
        b = (index // (dim_c * dim_h * dim_w)) % dim_b
        y = (index // dim_w) % dim_h
        x = index % dim_w
        ys, xs = y // k, x // k
        cs = (y % k) * k + x % k
        out[b, 0, y, x] = data[b][cs][ys][xs]
    return out


def loop_resample2d(input1: torch.Tensor, flow: torch.Tensor, kernel_size: int, dilation: int,
                    sigma: float) -> torch.Tensor:
    """kernel_resample2d_update_output; input2 = cat(flow, sigma) as the Python wrapper builds it."""
    in1 = input1.tolist()
    input2 = torch.cat([flow, torch.full_like(flow[:, :1], sigma)], 1).tolist()
    _, d, idim_h, idim_w = input1.shape
    b_, _, h, w = flow.shape
    out = torch.zeros(b_, d, h, w, dtype=torch.float64)
    dim_b, dim_c, dim_h, dim_w = out.shape
    for index in range(out.numel()):
        val, total = 0.0, 0.0
        b = (index // (dim_c * dim_h * dim_w)) % dim_b
        c = (index // (dim_h * dim_w)) % dim_c
        y = (index // dim_w) % dim_h
        x = index % dim_w
        dx, dy, sig = input2[b][0][y][x], input2[b][1][y][x], input2[b][2][y][x]
        xf, yf = x + dx, y + dy
        alpha, beta = xf - math.floor(xf), yf - math.floor(yf)
        for fy in range(kernel_size // 2):
            y_t = max(min(int(math.floor(yf) - fy * dilation), idim_h - 1), 0)
            y_b = max(min(int(math.floor(yf) + (fy + 1) * dilation), idim_h - 1), 0)
            for fx in range(kernel_size // 2):
                x_l = max(min(int(math.floor(xf) - fx * dilation), idim_w - 1), 0)
                x_r = max(min(int(math.floor(xf) + (fx + 1) * dilation), idim_w - 1), 0)
                x_l_ = fx * dilation + alpha
                x_r_ = (1.0 + fx) * dilation - alpha
                y_t_ = fy * dilation + beta
                y_b_ = (1.0 + fy) * dilation - beta
                x_l_p = math.exp(safe_div(-x_l_ * x_l_, 2 * sig * sig))
                x_r_p = math.exp(safe_div(-x_r_ * x_r_, 2 * sig * sig))
                y_t_p = math.exp(safe_div(-y_t_ * y_t_, 2 * sig * sig))
                y_b_p = math.exp(safe_div(-y_b_ * y_b_, 2 * sig * sig))
                val += y_t_p * x_l_p * in1[b][c][y_t][x_l]
                val += y_t_p * x_r_p * in1[b][c][y_t][x_r]
                val += y_b_p * x_l_p * in1[b][c][y_b][x_l]
                val += y_b_p * x_r_p * in1[b][c][y_b][x_r]
                total += y_t_p * x_l_p + y_t_p * x_r_p + y_b_p * x_l_p + y_b_p * x_r_p
        out[b, c, y, x] = safe_div(val, total)
    return out


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def _flows(b: int, h: int, w: int, seed: int) -> dict[str, torch.Tensor]:
    """Non-integer flows inside and far outside the image, and exactly-integer ones."""
    gen = torch.Generator().manual_seed(seed)
    inside = (torch.rand(b, 2, h, w, generator=gen, dtype=torch.float64) - 0.5) * 3
    outside = torch.randn(b, 2, h, w, generator=gen, dtype=torch.float64) * 2 * max(h, w)
    integer = torch.randint(-3, 4, (b, 2, h, w), generator=gen).double()
    mixed = integer.clone()
    mixed[:, 0] += 0.5          # half-way in x, integer in y
    return {"inside": inside, "outside": outside, "integer": integer, "mixed": mixed}


def _source(b: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


FLOW_KINDS = ["inside", "outside", "integer", "mixed"]


# --------------------------------------------------------------------------------------------------
# Forward equality
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_block_extractor_matches_the_kernel(k, kind):
    source = _source(2, 3, 5, 4, seed=k)
    flow = _flows(2, 5, 4, seed=10 + k)[kind]
    expected = loop_block_extractor(source, flow, k)
    torch.testing.assert_close(block_extractor(source, flow, k), expected, rtol=1e-9, atol=1e-9)
    # float32 (what the generator runs in): grid_sample's coordinate round trip costs only rounding
    torch.testing.assert_close(block_extractor(source.float(), flow.float(), k), expected.float(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_block_extractor_with_a_source_of_another_size(k):
    """The kernel samples the source in its own pixels, whatever the flow's size (GFLA uses equal sizes)."""
    source = _source(1, 2, 7, 6, seed=3)
    flow = _flows(1, 3, 4, seed=4)["inside"] * 2
    torch.testing.assert_close(block_extractor(source, flow, k), loop_block_extractor(source, flow, k),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_local_blocks_is_block_extraction_at_zero_flow(k):
    source = _source(2, 3, 5, 4, seed=k)
    zero = torch.zeros(2, 2, 5, 4, dtype=torch.float64)
    expected = loop_block_extractor(source, zero, k)
    assert torch.equal(local_blocks(source, k), expected)          # exact: integer samples, no arithmetic
    torch.testing.assert_close(block_extractor(source, zero, k), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_local_attn_reshape_matches_the_kernel(k):
    weights = _source(2, k * k, 4, 3, seed=k)
    assert torch.equal(local_attn_reshape(weights, k), loop_local_attn_reshape(weights, k))


@pytest.mark.parametrize("k", [1, 3, 4, 5])
@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_resample2d_matches_the_kernel(k, kind):
    source = _source(2, 3, 6, 5, seed=k)
    flow = _flows(2, 6, 5, seed=20 + k)[kind]
    expected = loop_resample2d(source, flow, k, 1, 2.0)
    torch.testing.assert_close(resample2d(source, flow, k, 1, 2.0), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(resample2d(source.float(), flow.float(), k, 1, 2.0), expected.float(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dilation, sigma", [(2, 2.0), (1, 0.7), (3, 5.0)])
def test_resample2d_other_dilations_and_sigmas_and_a_larger_source(dilation, sigma):
    source = _source(1, 2, 9, 8, seed=5)
    flow = _flows(1, 4, 3, seed=6)["inside"] * 2
    torch.testing.assert_close(resample2d(source, flow, 4, dilation, sigma),
                               loop_resample2d(source, flow, 4, dilation, sigma), rtol=1e-10, atol=1e-10)


def test_resample2d_at_zero_flow_is_a_gaussian_blur_of_the_neighbourhood():
    """Sanity of the semantics: a constant image stays constant, and the 4×4 taps are ⌊x⌋-1 … ⌊x⌋+2."""
    const = torch.full((1, 1, 6, 6), 3.0, dtype=torch.float64)
    flow = _flows(1, 6, 6, seed=7)["outside"]
    torch.testing.assert_close(resample2d(const, flow), const)
    impulse = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    impulse[0, 0, 4, 4] = 1.0
    zero = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    out = resample2d(impulse, zero)[0, 0]
    assert out[4, 4] == out.max() and out[2:6, 2:6].min() > 0     # rows/columns 3..6 see pixel 4 ...
    assert float(out[:2].abs().sum() + out[:, :2].abs().sum() + out[7].abs().sum()) == 0.0   # ... 0,1,7 do not


# --------------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------------
def _grad_inputs(seed: int, h: int = 4, w: int = 3):
    source = _source(1, 2, h, w, seed).requires_grad_(True)
    gen = torch.Generator().manual_seed(seed + 1)
    # non-integer positions (the floor is not differentiable at integers), some outside the image
    flow = ((torch.rand(1, 2, h, w, generator=gen, dtype=torch.float64) - 0.5) * 2 * max(h, w) + 0.3)
    return source, flow.requires_grad_(True)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_block_extractor_gradcheck(k):
    source, flow = _grad_inputs(k)
    assert torch.autograd.gradcheck(lambda s, f: block_extractor(s, f, k), (source, flow))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_local_attn_reshape_gradcheck(k):
    weights = _source(1, k * k, 3, 2, seed=k).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: local_attn_reshape(x, k), (weights,))


@pytest.mark.parametrize("k", [3, 4, 5])
def test_resample2d_gradcheck(k):
    source, flow = _grad_inputs(k)
    assert torch.autograd.gradcheck(lambda s, f: resample2d(s, f, k, 1, 2.0), (source, flow))


def test_resample2d_recomputes_in_backward_and_gives_the_plain_gradient():
    source, flow = _grad_inputs(9, h=5, w=6)
    out = resample2d(source, flow)                  # checkpointed path
    grads = torch.autograd.grad(out.square().sum(), (source, flow))
    from posetransfer.models.gfla_ops import _resample

    plain = _resample(source, flow, 4, 1, 2.0)
    expected = torch.autograd.grad(plain.square().sum(), (source, flow))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_bad_shapes_are_model_errors():
    with pytest.raises(ModelError, match="flow"):
        block_extractor(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 3)
    with pytest.raises(ModelError, match="9"):
        local_attn_reshape(torch.zeros(1, 8, 4, 4), 3)
    with pytest.raises(ModelError, match="sigma"):
        resample2d(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), 4, 1, 0.0)
    with pytest.raises(ModelError, match="kernel size"):
        block_extractor(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), 0)
