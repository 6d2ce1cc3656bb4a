"""The README's path from a GPTQ model folder to answers: `serve-llm` on a model folder, then
`research-bot ask` pointed at it with RESEARCH_BOT_LLM_BASE_URL. The model is tiny and random, so the
answer's words mean nothing; what is checked is that the answer came from the served model through
the OpenAI API (not the extractive fallback) with the corpus' sources attached."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from bot.cli.app import SAMPLE_CORPUS
from bot.cli.main import main
from inference.server import ServerConfig, create_app, load_served
from tests.inference._llm_helpers import build_served_folder


@pytest.fixture(scope="module")
def served_url(tmp_path_factory):
    # the tiny tokenizer (300 tokens) spends ~4,600 tokens on a prompt with five sources
    folder = build_served_folder(
        tmp_path_factory.mktemp("rag-llm") / "tiny-chat", max_position_embeddings=8192
    )
    served = load_served(ServerConfig(folder, max_batch=2, max_context=8192))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(served), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the LLM server did not start"
        time.sleep(0.05)
    yield base, folder.name
    server.should_exit = True
    thread.join(timeout=10)


def run(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


@pytest.mark.slow  # ~100 s (serves a GPTQ model on the CPU); CI's slow step runs it
def test_ask_answers_with_the_served_model(served_url, tmp_path, capsys, monkeypatch):
    base, name = served_url
    data = str(tmp_path / "data")
    code, _, err = run(["ingest", str(SAMPLE_CORPUS), "--data-dir", data], capsys)
    assert code == 0, err
    monkeypatch.setenv("RESEARCH_BOT_LLM_BASE_URL", base + "/v1")
    monkeypatch.setenv("RESEARCH_BOT_LLM_MODEL", name)
    before = httpx.get(base + "/health").json()["completed"]
    code, out, err = run(
        ["ask", "Что такое SageAttention и как она квантует внимание?", "--json", "--data-dir", data], capsys
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["mode"] == "llm" and not answer["abstained"]
    assert answer["answer"].strip()
    assert httpx.get(base + "/health").json()["completed"] == before + 1  # one chat completion served
