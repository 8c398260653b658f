"""Shared fixtures. Tests run on CPU with few threads so the suite stays fast on 2 cores."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

# Before torch is imported: pool threads sleep at barriers instead of spinning (posetransfer.runtime) — on
# a busy machine spinning threads take the cores the preempted ones need, and every short op then stalls.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("POSETRANSFER_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast as two and never spin-waits on a busy machine.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")`` (tests/models does for all).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def serve_in_thread():
    """``with serve_in_thread(make_config) as port:`` runs uvicorn in a thread of this process on a free
    loopback port; ``make_config(port)`` returns the ``uvicorn.Config`` (the web demo's tests)."""

    @contextlib.contextmanager
    def run(make_config):
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(make_config(port))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.time() + 20
        while not server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.05)
        try:
            yield port
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    return run


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """``tiny_dataset("market" | "fashion")``: a synthetic PATN-layout dataset (128×64 Market names or 256×176
    DeepFashion names), 3 people × 3 poses, 1 of them in the test split; made once per session and kind."""
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in made:
            from posetransfer.data.synth import generate_dataset

            made[kind] = Path(generate_dataset(tmp_path_factory.mktemp(f"tiny-{kind}") / "data", size=kind,
                                               identities=3, poses=3, test_identities=1, seed=0))
        return made[kind]

    return make


#: sitecustomize.py of :func:`run_cli_without`: the named top-level modules behave as not installed
#: (``sys.modules[name] = None``: ``import name`` raises ModuleNotFoundError, ``importlib.util.find_spec``
#: returns None), as in an environment installed without that extra.
_BLOCKER = """import os, sys
for _name in os.environ.get("POSETRANSFER_TEST_UNINSTALLED", "").split(","):
    if _name:
        sys.modules[_name] = None
"""


@pytest.fixture(scope="session")
def run_cli_without(tmp_path_factory):
    """``run_cli_without(["fastapi"], "serve", ...)``: the CLI in a fresh process where those modules are not
    importable; returns the CompletedProcess (text stdout/stderr). This checkout comes first on the path."""
    import subprocess
    import sys

    shim = tmp_path_factory.mktemp("uninstalled")
    (shim / "sitecustomize.py").write_text(_BLOCKER)
    repo = Path(__file__).resolve().parent.parent

    def run(modules, *args, timeout: float = 300, cwd=None):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(repo)]),
               "POSETRANSFER_TEST_UNINSTALLED": ",".join(modules), "OMP_NUM_THREADS": "1",
               "POSETRANSFER_OFFLINE": "1", "TQDM_DISABLE": "1"}
        return subprocess.run([sys.executable, "-m", "posetransfer", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=cwd)

    return run
