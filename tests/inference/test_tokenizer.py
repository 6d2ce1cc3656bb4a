"""Tokenizer wrapper: chat template or plain fallback, stop ids, UTF-8-safe incremental detokenization."""

from __future__ import annotations

import logging

import pytest

from inference.tokenizer import ChatTokenizer, TokenizerError
from tests.inference._llm_helpers import train_tokenizer

TEXT = "Привет, мир! Квантование 🚀🔥 работает 😀🤖✨ ёжик"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    train_tokenizer(path)
    return ChatTokenizer.from_folder(path)


def test_incremental_detokenization_never_emits_broken_utf8(tok):
    ids = tok.hf.encode(TEXT, add_special_tokens=False)
    # the small byte-level vocabulary splits the emoji into several byte tokens
    assert any("\ufffd" in tok.decode([i]) for i in ids)
    stream = tok.stream(tok.encode("Вопрос:"))
    deltas = [stream.push(i) for i in ids]
    deltas.append(stream.finish())
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == TEXT


@pytest.mark.parametrize("stop", ["мир", "🔥", "ёжик", "Квантование 🚀"])
def test_stop_strings_are_cut_and_never_shown(tok, stop):
    ids = tok.hf.encode(TEXT, add_special_tokens=False)
    stream = tok.stream([], stop=(stop,))
    shown = ""
    for i in ids:
        shown += stream.push(i)
        assert stop not in shown
        if stream.stopped:
            break
    shown += stream.finish()
    assert stream.stopped and shown == TEXT[: TEXT.find(stop)]


def test_chat_template_and_stop_ids(tok):
    ids = tok.apply_chat([{"role": "user", "content": "Привет"}])
    text = tok.hf.decode(ids)
    assert text.startswith("<|im_start|>user\nПривет<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    assert tok.hf.convert_tokens_to_ids("<|im_end|>") in tok.stop_token_ids


def test_missing_chat_template_falls_back_with_a_warning(tmp_path, caplog):
    train_tokenizer(tmp_path, chat_template=None)
    with caplog.at_level(logging.WARNING, logger="inference.tokenizer"):
        tok = ChatTokenizer.from_folder(tmp_path)
    assert "no chat template" in caplog.text
    text = tok.hf.decode(
        tok.apply_chat([{"role": "system", "content": "Кратко."}, {"role": "user", "content": "Hi"}])
    )
    assert text == "System: Кратко.\n\nUser: Hi\n\nAssistant:"
    stream = tok.stream([])
    ids = tok.hf.encode(" Hello\n\nUser: more", add_special_tokens=False)
    shown = "".join(stream.push(i) for i in ids) + stream.finish()
    assert shown == " Hello"  # the plain template's next-turn marker ends the answer


def test_folder_without_tokenizer(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer files"):
        ChatTokenizer.from_folder(tmp_path)
