"""Checks of a weights file before a model is built from it: its declared size and its tensors' types.

:func:`check_declared_size` — refuse a model whose declared architecture is far larger than the weights
file it comes from. Why: a weights file says what to build — the metadata of a generator file (``ngf=256,
n_blocks=400``), or, for an official ``.pth``, the largest layer index among its keys (one key ``att.99999.*``
means 100 000 blocks). A 300 KB file could so make ``test`` or ``convert`` allocate tens of GB before the
strict load notices that the weights do not fit. The declared model is built on the ``meta`` device (shapes
only, no memory) while its parameters and buffers are counted *as they are registered*: once it holds
clearly more values than the file, building stops and the file is refused — also when the architecture is
so deep that merely creating its modules would take long. The exact check (keys, shapes) stays with the
strict load that follows; this guard only keeps the model that load builds within a small multiple of the
file.

:func:`check_weight_dtypes` — weights are floating point (batch-norm counters int64). Why: ``load_state_dict``
casts silently, so weights stored as bool, int64 or complex (a forged file, whose manifest may even match)
would load and train as if they were good.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.modules import module as torch_module

from ..errors import CheckpointError

#: values a declared model may hold beyond the file's own: buffers a file does not store (batch counters,
#: non-persistent tables) and instance-norm statistics an official file stores but our layers drop
SLACK_VALUES = 1 << 20
#: never build more than this many values (4 bytes each), whatever the file holds
MAX_VALUES = 1 << 31
#: modules per tensor of the file (activations, containers, norms without weights), plus a fixed allowance
MODULES_PER_TENSOR = 16
SLACK_MODULES = 1024

_active = threading.local()


class _TooLarge(Exception):
    pass


def _count(kind: str, amount: int) -> None:
    budget = getattr(_active, "budget", None)
    if budget is None:         # not building under check_declared_size in this thread
        return
    budget[kind] -= amount
    if budget[kind] < 0:
        raise _TooLarge(kind)


def _on_tensor(_module, _name, tensor):
    if tensor is not None:
        _count("values", tensor.numel())


def _on_module(_module, _name, _submodule):
    _count("modules", 1)


def check_declared_size(build: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], where: str,
                        declared: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`CheckpointError` naming ``where`` if ``build()`` makes a model far larger than ``state``.

    ``build`` is called once, on the meta device; the numbers of ``declared`` (the config it builds, e.g.
    ``ngf=256, n_blocks=400``) go into the message. Errors the builder raises itself are left to the real
    build that follows.
    """
    held = sum(int(t.numel()) for t in state.values())
    budget = {"values": min(MAX_VALUES, 2 * held + SLACK_VALUES),
              "modules": MODULES_PER_TENSOR * len(state) + SLACK_MODULES}
    limit = dict(budget)
    hooks = [torch_module.register_module_parameter_registration_hook(_on_tensor),
             torch_module.register_module_buffer_registration_hook(_on_tensor),
             torch_module.register_module_module_registration_hook(_on_module)]
    _active.budget = budget
    try:
        with torch.device("meta"):
            build()
    except _TooLarge as exc:
        what = (f"more than {limit['values']:,} values" if str(exc) == "values"
                else f"more than {limit['modules']:,} layers")
        numbers = ", ".join(f"{k}={v}" for k, v in (declared or {}).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool))
        arch = f" ({numbers})" if numbers else ""
        raise CheckpointError(f"{where}: the declared architecture{arch} has {what}, but the file holds "
                              f"{held:,} values in {len(state)} tensors; refusing to build it") from None
    except Exception:          # noqa: BLE001 - the builder's own errors are reported by the real build
        pass
    finally:
        _active.budget = None
        for hook in hooks:
            hook.remove()


#: safetensors' names of the floating-point dtypes (the header's ``dtype`` field)
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
_TORCH_NAMES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                torch.bool: "BOOL", torch.complex64: "C64", torch.complex128: "C128"}
#: integer buffers of our layers (BatchNorm's batch counter)
INTEGER_BUFFERS = (".num_batches_tracked",)


def dtype_name(dtype: str | torch.dtype) -> str:
    """``torch.float32`` or safetensors' ``"F32"`` → ``"F32"``."""
    return dtype if isinstance(dtype, str) else _TORCH_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def check_weight_dtypes(dtypes: Mapping[str, str | torch.dtype], where: str) -> None:
    """Every weight floating point, every ``num_batches_tracked`` counter int64, else :class:`CheckpointError`.

    ``dtypes``: tensor name → dtype (torch's, or the name in a safetensors header, read without the data).
    """
    for key, dtype in dtypes.items():
        name = dtype_name(dtype)
        expected = {"I64"} if key.endswith(INTEGER_BUFFERS) else FLOAT_DTYPES
        if name not in expected:
            want = "int64" if expected == {"I64"} else "a floating-point type"
            raise CheckpointError(f"{where}: tensor {key!r} has dtype {name}, {want} is expected (a forged or "
                                  f"corrupt weights file)")
