"""Triton kernels run under the interpreter on CPU-only machines.

`@triton.jit` decides between the compiled and the interpreted function when the kernel module is
imported, so TRITON_INTERPRET must be set before any `inference.kernels` import: this conftest is
imported before the test modules of this folder. On a CUDA machine the same tests run natively.

Also the one `serve-llm` process (a tiny GPTQ model) that the HTTP tests of several modules share.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
import torch

from tests.inference._llm_helpers import build_served_folder

MAX_BATCH = 4

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture
def kernel_device() -> str:
    """Where kernel tests put their tensors: CUDA when present, else CPU under the interpreter."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    folder = build_served_folder(tmp_path_factory.mktemp("served") / "tiny-chat")
    port = _free_port()
    # one torch thread: on a shared CI box, OpenMP threads spinning against other processes made
    # decoding ~9x slower (measured 25 vs 220 tok/s at load 10 on 2 cores)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RESEARCH_BOT_DATA_DIR": str(folder.parent / "data"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "bot.cli.main",
        "serve-llm",
        "--model",
        str(folder),
        "--port",
        str(port),
        "--max-batch",
        str(MAX_BATCH),
        "--max-queue",
        "32",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"serve-llm exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("serve-llm did not come up in 120 s")
        time.sleep(0.2)
    yield {"base": base, "folder": folder, "name": folder.name}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server["base"] + "/v1", api_key="unused", max_retries=0, timeout=60)
