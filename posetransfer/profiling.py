"""Where a training step's time goes: a ``torch.profiler`` trace summed per component.

Components are the models of a step (the generator, each discriminator, the perceptual VGG), the data
loader, the optimisers and the rest (losses, checks, logging). A model's *forward* time is the duration of
its calls, marked by global module hooks (:func:`component_scopes`: a ``record_function`` scope around every
call of a classified module, so the training loop needs no profiling code of its own and an older checkout
can be profiled the same way). Its *backward* time is found through autograd's sequence numbers: each
backward node carries the sequence number of the forward op that created it, so the trace's
``autograd::engine::evaluate_function: …`` events are charged to the component whose scope contained that
forward op. One ``loss.backward()`` through D, VGG and G therefore splits into its three parts without
changing the step.

This module imports nothing from the rest of the package (only torch), so that
``benchmarks/bench_train_step.py`` can load it by file path next to an older posetransfer checkout.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

#: prefix of the ``record_function`` scopes the hooks open (kept apart from torch's own event names)
SCOPE = "component:"
DATA_PREFIX = "enumerate(DataLoader)"
OPTIMIZER_PREFIXES = ("Optimizer.step#", "Optimizer.zero_grad#")
BACKWARD_PREFIX = "autograd::engine::evaluate_function:"


def training_classifier(discriminator_names: Sequence[str]) -> Callable[[nn.Module], str | None]:
    """Names the models of a posetransfer training step: ``G``, ``D.<name>`` (discriminators in the order the
    step first calls them, which is the config's order) and ``VGG``; None for every other module."""
    seen: dict[int, str] = {}
    names = list(discriminator_names)

    def classify(module: nn.Module) -> str | None:
        key = id(module)
        if key in seen:
            return seen[key]
        if type(module).__name__ == "VGGFeatures":
            seen[key] = "VGG"
        elif getattr(module, "arch", None) and hasattr(module, "pose_channels"):
            seen[key] = "G"
        elif getattr(module, "arch", None):
            index = sum(1 for v in seen.values() if v.startswith("D."))
            seen[key] = f"D.{names[index] if index < len(names) else index}"
        else:
            return None
        return seen[key]

    return classify


@contextlib.contextmanager
def component_scopes(classify: Callable[[nn.Module], str | None]) -> Iterator[None]:
    """While active, every call of a module ``classify`` names runs inside ``record_function(SCOPE + name)``."""
    open_scopes: dict[int, list[Any]] = defaultdict(list)

    def before(module: nn.Module, args: Any) -> None:
        name = classify(module)
        if name is not None:
            scope = torch.profiler.record_function(SCOPE + name)
            scope.__enter__()
            open_scopes[id(module)].append(scope)

    def after(module: nn.Module, args: Any, output: Any) -> None:
        stack = open_scopes.get(id(module))
        if stack:
            stack.pop().__exit__(None, None, None)

    pre = nn.modules.module.register_module_forward_pre_hook(before)
    post = nn.modules.module.register_module_forward_hook(after)
    try:
        yield
    finally:
        pre.remove()
        post.remove()


def _scope_of(event: Any) -> str | None:
    parent = event
    while parent is not None:
        if parent.name.startswith(SCOPE):
            return parent.name[len(SCOPE):]
        parent = parent.cpu_parent
    return None


def summarize(events: Sequence[Any], steps: int, start_us: float | None = None,
              end_us: float | None = None) -> dict[str, Any]:
    """Seconds per step of each component (forward, backward, total), the data loader, the optimisers and
    the remainder, from ``profile.events()`` between ``start_us`` and ``end_us`` (trace time, µs).

    ``steps`` is the number of steps in that window. Backward events of forward ops outside every component
    (loss functions, concatenations) count as "losses, checks, logging" with the rest.
    """
    events = _window(events, start_us, end_us)
    if not events:
        raise ValueError("no profiler events in the window")
    t_first = min(e.time_range.start for e in events) if start_us is None else start_us
    t_last = max(e.time_range.end for e in events) if end_us is None else end_us
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    sequence_scope: dict[tuple[int, int], str] = {}
    data = optim = 0.0
    for e in events:
        if e.name.startswith(SCOPE):
            if not _has_ancestor(e, SCOPE):
                forward[e.name[len(SCOPE):]] += e.time_range.elapsed_us()
        elif e.name.startswith(DATA_PREFIX) and not _has_ancestor(e, DATA_PREFIX):
            data += e.time_range.elapsed_us()
        elif e.name.startswith(OPTIMIZER_PREFIXES) and not _has_ancestor(e, OPTIMIZER_PREFIXES):
            optim += e.time_range.elapsed_us()
        if getattr(e, "sequence_nr", -1) >= 0 and not e.name.startswith(BACKWARD_PREFIX):
            scope = _scope_of(e)
            if scope is not None:
                sequence_scope.setdefault((e.thread, e.sequence_nr), scope)
    unattributed_backward = 0.0
    for e in events:
        if e.name.startswith(BACKWARD_PREFIX) and not _has_ancestor(e, BACKWARD_PREFIX):
            scope = sequence_scope.get((getattr(e, "fwd_thread", e.thread), e.sequence_nr))
            if scope is None:
                unattributed_backward += e.time_range.elapsed_us()
            else:
                backward[scope] += e.time_range.elapsed_us()
    total = t_last - t_first
    per = 1e-6 / max(1, steps)
    components = {name: {"forward_s": forward.get(name, 0.0) * per, "backward_s": backward.get(name, 0.0) * per,
                         "total_s": (forward.get(name, 0.0) + backward.get(name, 0.0)) * per}
                  for name in sorted(set(forward) | set(backward), key=_component_order)}
    accounted = sum(forward.values()) + sum(backward.values()) + data + optim
    return {"step_s": total * per, "components": components, "data_s": data * per, "optimizers_s": optim * per,
            "other_s": max(0.0, total - accounted) * per, "unattributed_backward_s": unattributed_backward * per,
            "steps": steps}


def _component_order(name: str) -> tuple[int, str]:
    return ({"G": 0, "VGG": 2}.get(name, 1), name)


def _has_ancestor(event: Any, prefixes: str | tuple[str, ...]) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(prefixes):
            return True
        parent = parent.cpu_parent
    return False


def step_windows(events: Sequence[Any], marker: str = DATA_PREFIX) -> list[float]:
    """Start times (µs) of the top-level events whose name starts with ``marker``, sorted: with the default,
    the data-loader fetches, one per training step (the step boundaries); a caller that marks each step with
    its own ``record_function`` passes that name."""
    return sorted(e.time_range.start for e in events if e.name.startswith(marker) and not _has_ancestor(e, marker))


def _window(events: Sequence[Any], start_us: float | None, end_us: float | None) -> list[Any]:
    return [e for e in events if (start_us is None or e.time_range.start >= start_us)
            and (end_us is None or e.time_range.end <= end_us)]


def top_ops(events: Sequence[Any], steps: int, start_us: float | None = None, end_us: float | None = None,
            limit: int = 12) -> list[dict[str, Any]]:
    """The ops with the most self time per step (aten kernels; scopes and backward nodes excluded as
    containers)."""
    self_time: dict[str, float] = defaultdict(float)
    for e in _window(events, start_us, end_us):
        if e.name.startswith((SCOPE, BACKWARD_PREFIX, DATA_PREFIX, *OPTIMIZER_PREFIXES)):
            continue
        self_time[e.name] += e.self_cpu_time_total
    ranked = sorted(self_time.items(), key=lambda kv: -kv[1])[:limit]
    return [{"op": name, "self_s": t * 1e-6 / max(1, steps)} for name, t in ranked]


def top_level_ops(events: Sequence[Any], steps: int, start_us: float | None = None, end_us: float | None = None,
                  limit: int = 10) -> list[dict[str, Any]]:
    """What the remainder ("losses, checks, logging") is made of: the outermost events outside every
    component, the data loader and the optimisers, by total time per step and calls per step."""
    total: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for e in _window(events, start_us, end_us):
        if e.cpu_parent is not None or e.name.startswith((SCOPE, DATA_PREFIX, *OPTIMIZER_PREFIXES)):
            continue
        if e.name.startswith(BACKWARD_PREFIX):
            continue   # charged to components (or to unattributed_backward) by summarize
        total[e.name] += e.time_range.elapsed_us()
        calls[e.name] += 1
    ranked = sorted(total.items(), key=lambda kv: -kv[1])[:limit]
    per = max(1, steps)
    return [{"op": name, "s": t * 1e-6 / per, "calls": calls[name] / per} for name, t in ranked]
