"""Random state dicts in the official PATN / PoNA key layouts (``*_net_netG.pth``, ``*_net_netD_*.pth``).

Written out from the documented official layouts (prior_art.md §1.1.3–1.1.4, §1.2; key names confirmed by
load errors quoted in Pose-Transfer issues #12/#47/#82), independently of our modules: the ``model.``
prefix of the official generator wrapper, PyTorch 0.3's InstanceNorm running statistics, the Dropout slot
(and :func:`no_dropout` for models trained with ``--no_dropout``). Shared by the conversion tests and the
official-pipeline test.
"""
from __future__ import annotations

import torch


def _conv(state, key, cin, cout, k, bias=True, transposed=False):
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    state[f"{key}.weight"] = torch.randn(shape) * 0.02
    if bias:
        state[f"{key}.bias"] = torch.randn(cout) * 0.02


def _norm(state, key, c, norm):
    """batch: affine + stats (PyTorch 0.3: no num_batches_tracked); instance (PyTorch 0.3): stats only."""
    if norm == "batch":
        state[f"{key}.weight"] = 1 + torch.randn(c) * 0.02
        state[f"{key}.bias"] = torch.randn(c) * 0.02
    state[f"{key}.running_mean"] = torch.randn(c) * 0.1
    state[f"{key}.running_var"] = torch.rand(c) + 0.5


def official_patn_state(ngf=8, n_blocks=2, norm="instance", pose=18):
    s: dict[str, torch.Tensor] = {}
    bias = norm == "instance"
    for name, cin in (("stream1_down", 3), ("stream2_down", 2 * pose)):
        _conv(s, f"{name}.1", cin, ngf, 7, bias); _norm(s, f"{name}.2", ngf, norm)
        _conv(s, f"{name}.4", ngf, 2 * ngf, 3, bias); _norm(s, f"{name}.5", 2 * ngf, norm)
        _conv(s, f"{name}.7", 2 * ngf, 4 * ngf, 3, bias); _norm(s, f"{name}.8", 4 * ngf, norm)
    d = 4 * ngf
    for i in range(n_blocks):
        p = f"att.{i}.conv_block_stream1"
        _conv(s, f"{p}.1", d, d, 3, bias); _norm(s, f"{p}.2", d, norm)
        _conv(s, f"{p}.6", d, d, 3, bias); _norm(s, f"{p}.7", d, norm)
        p, width = f"att.{i}.conv_block_stream2", (2 * d if i > 0 else d)
        _conv(s, f"{p}.1", width, width, 3, bias); _norm(s, f"{p}.2", width, norm)
        _conv(s, f"{p}.6", width, d, 3, bias)
    _conv(s, "stream1_up.0", d, 2 * ngf, 3, bias, transposed=True); _norm(s, "stream1_up.1", 2 * ngf, norm)
    _conv(s, "stream1_up.3", 2 * ngf, ngf, 3, bias, transposed=True); _norm(s, "stream1_up.4", ngf, norm)
    _conv(s, "stream1_up.7", ngf, 3, 7, True)
    return {f"model.{k}": v for k, v in s.items()}


def official_pona_state(ngf=8, n_blocks=2, pose=18):
    """The released DeepFashion PoNA (PyTorch 1.2, instance norm without running stats)."""
    s: dict[str, torch.Tensor] = {}
    for name, cin in (("stream1_down", 3), ("stream2_down", 2 * pose)):
        _conv(s, f"{name}.1", cin, ngf, 7); _conv(s, f"{name}.4", ngf, 2 * ngf, 3)
        _conv(s, f"{name}.7", 2 * ngf, 4 * ngf, 3)
    d = 4 * ngf
    for i in range(n_blocks):
        p = f"att.{i}"
        _conv(s, f"{p}.query_conv", d, d // 8, 1); _conv(s, f"{p}.key_conv", d, d // 8, 1)
        _conv(s, f"{p}.value_conv", d, d, 1)
        s[f"{p}.gamma"] = torch.tensor([0.3])
        for name, cin, cout in (("conv", d, d), ("dconv", 2 * d, 2 * d), ("conv2", d, d), ("dconv2", 2 * d, d)):
            _conv(s, f"{p}.{name}.conv.0", cin, cin, 3); _conv(s, f"{p}.{name}.conv.4", cin, cout, 3)
        _conv(s, f"{p}.att2.query_conv", 2 * d, d // 4, 1); _conv(s, f"{p}.att2.key_conv", 2 * d, d // 4, 1)
        _conv(s, f"{p}.att2.value_conv", 2 * d, 2 * d, 1)
        s[f"{p}.att2.gamma"] = torch.tensor([0.2]); s[f"{p}.att2.beta"] = torch.tensor([0.1])
    _conv(s, "stream1_up.0", d, 2 * ngf, 3, transposed=True); _conv(s, "stream1_up.3", 2 * ngf, ngf, 3, transposed=True)
    _conv(s, "stream1_up.7", ngf, 3, 7)
    return {f"model.{k}": v for k, v in s.items()}


def official_discriminator_state(input_nc, ndf=8, n_blocks=3, norm="batch"):
    s: dict[str, torch.Tensor] = {}
    bias = norm == "instance"
    _conv(s, "model.1", input_nc, ndf, 7, bias); _norm(s, "model.2", ndf, norm)
    _conv(s, "model.4", ndf, 2 * ndf, 3, bias); _norm(s, "model.5", 2 * ndf, norm)
    _conv(s, "model.7", 2 * ndf, 4 * ndf, 3, bias); _norm(s, "model.8", 4 * ndf, norm)
    for i in range(n_blocks):
        p = f"model.{10 + i}.conv_block"
        _conv(s, f"{p}.1", 4 * ndf, 4 * ndf, 3, bias); _norm(s, f"{p}.2", 4 * ndf, norm)
        _conv(s, f"{p}.6", 4 * ndf, 4 * ndf, 3, bias); _norm(s, f"{p}.7", 4 * ndf, norm)
    return s


def no_dropout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keys of a PATN trained with ``--no_dropout``: no Dropout slot, so indices after it are one lower."""
    shifted = {}
    for key, value in state.items():
        parts = key.split(".")
        if "conv_block_stream" in key and int(parts[4]) >= 6:
            parts[4] = str(int(parts[4]) - 1)
        shifted[".".join(parts)] = value
    return shifted
