"""Tokenizer wrapper: chat template or plain fallback, stop ids, UTF-8-safe incremental detokenization."""

from __future__ import annotations

import logging

import pytest

from inference.sampling import TokenLogprob
from inference.server.protocol import TextOffsets, completion_logprobs
from inference.tokenizer import ChatTokenizer, TextStream, TokenizerError
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


def test_token_pieces_are_the_real_bytes_of_byte_level_tokens(tok):
    ids = tok.hf.encode(TEXT, add_special_tokens=False)
    pieces = [tok.token_piece(i) for i in ids]
    assert b"".join(raw for _, raw in pieces) == TEXT.encode()
    # the small vocabulary splits Cyrillic letters and emoji: those tokens carry part of a character
    split = [(text, raw) for text, raw in pieces if text.startswith("bytes:")]
    assert split and all(text == "bytes:" + "".join(f"\\x{b:02x}" for b in raw) for text, raw in split)
    whole = [(text, raw) for text, raw in pieces if not text.startswith("bytes:")]
    assert any("р" in text for text, _ in whole) and all(text.encode() == raw for text, raw in whole)
    # a special token has no text of its own (decode drops it): its literal name and no bytes
    assert tok.token_piece(tok.hf.convert_tokens_to_ids("<|im_end|>")) == ("<|im_end|>", None)


def test_token_pieces_of_a_sentencepiece_vocabulary():
    """`▁` is a space and `<0xNN>` byte-fallback tokens are that byte (Llama 2 / Mistral vocabularies)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece in ["▁", *sorted(set("Приветмир")), "▁П", "▁м"]:
        vocab[piece] = len(vocab)
    model = models.BPE(vocab=vocab, merges=[("▁", "П"), ("▁", "м")], unk_token="<unk>", byte_fallback=True)
    sp = Tokenizer(model)
    sp.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    sp.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=sp, bos_token="<s>", eos_token="</s>")
    tok = ChatTokenizer(hf, frozenset(), False)
    text = "Привет мир 🚀"
    ids = hf.encode(text, add_special_tokens=False)
    pieces = [tok.token_piece(i) for i in ids]
    assert pieces[0] == (" П", " П".encode())  # the leading `▁` is a space
    assert [p for p in pieces if p[0].startswith("bytes:")] == [  # the emoji by byte fallback
        ("bytes:\\xf0", b"\xf0"),
        ("bytes:\\x9f", b"\x9f"),
        ("bytes:\\x9a", b"\x9a"),
        ("bytes:\\x80", b"\x80"),
    ]
    assert b"".join(raw for _, raw in pieces).decode() == " " + text  # SentencePiece's prepended space
    assert tok.token_piece(hf.convert_tokens_to_ids("</s>")) == ("</s>", None)
    # an echoed prompt's text_offset points into the text as returned (without the prepended space)
    lps = [TokenLogprob(t, None if i == 0 else -1.0, []) for i, t in enumerate(ids)]
    echo = completion_logprobs(lps, tok.token_piece, TextOffsets.for_echo(text, ids, tok.token_piece))
    shown = [p.removeprefix(" ") if i == 0 else p for i, (p, _) in enumerate(pieces)]
    for offset, piece in zip(echo.text_offset, shown, strict=True):
        if not piece.startswith("bytes:"):
            assert text[offset:].startswith(piece), (offset, piece)
    assert echo.text_offset[-4:] == [len(text) - 1] * 4  # the emoji's four bytes: one character


class _PartialBytes:
    """A tokenizer whose id 2 is "мир" plus the first byte of an emoji (decodes to U+FFFD until id 3
    completes it): the token that generates the stop string also leaves a partial character."""

    PIECES = {1: "Привет, ", 2: "мир\ufffd", 3: "✨"}

    def decode(self, ids):
        text = "".join(self.PIECES[i] for i in ids)
        return text.replace("\ufffd✨", "✨")


def test_a_stop_string_revealed_only_when_generation_ends_still_counts_as_a_stop():
    """max_tokens reached on the token that completes a stop string the detokenizer held back: the
    engine reports finish_reason "stop" (as OpenAI does), not "length" (LiteLLM's test caught it)."""
    stream = TextStream(_PartialBytes(), [], ("мир",))
    shown = stream.push(1) + stream.push(2)
    assert shown == "Привет, " and not stream.matched_stop  # "мир" held back behind the partial byte
    shown += stream.finish()
    assert shown == "Привет, " and stream.matched_stop

    plain = TextStream(_PartialBytes(), [], ("пока",))
    assert plain.push(1) + plain.push(2) + plain.finish() == "Привет, мир\ufffd"
    assert not plain.matched_stop
