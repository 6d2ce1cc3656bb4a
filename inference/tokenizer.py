"""The model folder's tokenizer: chat template, stop tokens, incremental detokenization.

Boundary: text <-> token ids for one model folder, read with `AutoTokenizer` from the local folder
only (never the hub at run time). `TextStream` turns generated ids into text deltas that never end
inside a UTF-8 sequence and never show a stop string or the text after it. `token_piece` gives one
id's exact bytes and display string (for log-probabilities).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.errors import InferenceError

log = logging.getLogger(__name__)

# Used when the folder's tokenizer has no chat template (base models): role-prefixed turns.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
PLAIN_STOP = ("\n\nUser:",)  # the plain template's next turn marker ends an answer
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece byte-fallback token


class TokenizerError(InferenceError):
    """The tokenizer files are missing or unusable, or a prompt cannot be rendered."""


@dataclass
class ChatTokenizer:
    """Wraps a transformers tokenizer with what the engine and server need."""

    hf: Any
    stop_token_ids: frozenset[int]
    has_chat_template: bool
    extra_stop: tuple[str, ...] = ()
    _pieces: dict[int, tuple[str, bytes | None]] = field(default_factory=dict, repr=False, compare=False)
    _piece_kind: str | None = field(default=None, repr=False, compare=False)
    _added: dict[int, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_folder(cls, model_dir: str | os.PathLike, extra_eos: tuple[int, ...] = ()) -> ChatTokenizer:
        from transformers import AutoTokenizer

        path = Path(model_dir)
        if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
            raise TokenizerError(
                f"{path}: no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)"
            )
        try:
            hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/KeyError variants
            raise TokenizerError(f"{path}: cannot load the tokenizer ({type(exc).__name__}: {exc})") from None
        stops = {int(i) for i in extra_eos}
        if hf.eos_token_id is not None:
            stops.add(int(hf.eos_token_id))
        # chat models end turns with a token other than EOS on some families (Qwen <|im_end|>, Llama 3 <|eot_id|>)
        for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
            tid = hf.convert_tokens_to_ids(tok) if tok in hf.get_vocab() else None
            if tid is not None:
                stops.add(int(tid))
        has_template = bool(getattr(hf, "chat_template", None))
        if not has_template:
            log.warning("%s: the tokenizer has no chat template; using a plain 'Role: text' template", path)
        return cls(hf, frozenset(stops), has_template, () if has_template else PLAIN_STOP)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=True))

    def apply_chat(self, messages: list[dict[str, str]]) -> list[int]:
        template = None if self.has_chat_template else PLAIN_TEMPLATE
        try:
            text = self.hf.apply_chat_template(
                messages, chat_template=template, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # jinja errors: a template that rejects these roles, etc.
            raise TokenizerError(f"chat template failed on these messages: {exc}") from None
        # the template already holds BOS where the model wants it; adding specials again would double it
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=True)

    def token_piece(self, token_id: int) -> tuple[str, bytes | None]:
        """One id's (display string, exact bytes); bytes is None for special tokens, which `decode`
        drops from the text (EOS, <|im_end|>): their display string is the literal token.

        The bytes are the token's own: a Cyrillic letter or emoji split over two tokens gives each
        its part of the UTF-8 sequence, so a completion's bytes joined are the UTF-8 of its text.
        A display string for bytes that are not valid UTF-8 on their own reads "bytes:\\xd0\\x9f"
        (the OpenAI/vLLM convention); the `bytes` list carries the real values either way.
        """
        token_id = int(token_id)
        piece = self._pieces.get(token_id)
        if piece is None:
            raw = self._token_bytes(token_id)
            if raw is None:
                text = self.hf.convert_ids_to_tokens(token_id) or ""
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
            piece = self._pieces[token_id] = (text, raw)
        return piece

    def _token_bytes(self, token_id: int) -> bytes | None:
        if self._added is None:  # transformers rebuilds this dict on every access
            self._added = dict(self.hf.added_tokens_decoder)
        added = self._added.get(token_id)
        if added is not None:  # added tokens are stored as plain text, not in the vocabulary's alphabet
            return None if added.special else added.content.encode()
        if self._piece_kind is None:
            self._piece_kind = _vocab_kind(self.hf)
        raw = self.hf.convert_ids_to_tokens(token_id)
        if isinstance(raw, str) and self._piece_kind == "byte_level":
            table = _byte_decoder()
            if all(c in table for c in raw):
                return bytes(table[c] for c in raw)
        elif isinstance(raw, str) and self._piece_kind == "sentencepiece":
            m = _BYTE_PIECE.fullmatch(raw)
            return bytes([int(m.group(1), 16)]) if m else raw.replace("\u2581", " ").encode()
        return self.hf.decode([token_id]).encode()  # any other vocabulary: its decoded text

    def stream(self, prompt_ids: list[int], stop: tuple[str, ...] = ()) -> TextStream:
        return TextStream(self, prompt_ids, tuple(s for s in (*stop, *self.extra_stop) if s))


def _vocab_kind(hf: Any) -> str:
    """ "byte_level" (GPT-2 byte-to-unicode alphabet: GPT-2, Qwen, Llama 3), "sentencepiece"
    (`\u2581` for a space, `<0xNN>` byte fallback: Llama 2, Mistral) or "other", from the decoder."""
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:  # a Python (slow) tokenizer: SentencePiece ones carry their model
        return "sentencepiece" if hasattr(hf, "sp_model") else "other"
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    kinds = {d.get("type") for d in [decoder, *decoder.get("decoders", [])]}
    replaces_metaspace = any(
        d.get("pattern", {}).get("String") == "\u2581" for d in decoder.get("decoders", [])
    )
    if "ByteLevel" in kinds:
        return "byte_level"
    if kinds & {"Metaspace", "ByteFallback"} or replaces_metaspace:
        return "sentencepiece"
    return "other"


_BYTE_DECODER: dict[str, int] = {}


def _byte_decoder() -> dict[str, int]:
    """The GPT-2 alphabet character -> the byte it stands for."""
    if not _BYTE_DECODER:
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        _BYTE_DECODER.update({c: b for b, c in bytes_to_unicode().items()})
    return _BYTE_DECODER


class TextStream:
    """Incremental detokenizer with stop strings.

    Decoding ids one at a time breaks multi-byte characters (a Cyrillic letter or an emoji spread
    over two byte-level tokens) and drops SentencePiece leading spaces, so each step decodes a
    window starting a few tokens back and emits only the new suffix once it no longer ends in
    U+FFFD (the replacement character a partial UTF-8 sequence decodes to). Text that could be the
    start of a stop string is held back until it is known not to be one.
    """

    CONTEXT = 5  # prompt tokens kept as left context so the first token's spacing decodes right

    def __init__(self, tok: ChatTokenizer, prompt_ids: list[int], stop: tuple[str, ...]):
        self.tok = tok
        self.ids = list(prompt_ids[-self.CONTEXT :])
        self.prefix = 0
        self.read = len(self.ids)
        self.stop = stop
        self.held = ""
        self.stopped = False
        self.matched_stop = False  # a stop string was generated (also when only `finish` reveals it)

    def _next_text(self) -> str:
        prefix_text = self.tok.decode(self.ids[self.prefix : self.read])
        new_text = self.tok.decode(self.ids[self.prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text) :]
            self.prefix, self.read = self.read, len(self.ids)
            return delta
        return ""

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text that is now safe to show (maybe empty)."""
        if self.stopped:
            return ""
        self.ids.append(int(token_id))
        return self._filter(self._next_text())

    def _filter(self, delta: str) -> str:
        if not self.stop:
            return delta
        buf = self.held + delta
        hits = [i for i in (buf.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = self.matched_stop = True
            self.held = ""
            return buf[: min(hits)]
        keep = 0  # longest suffix of buf that begins some stop string
        for s in self.stop:
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:n]):
                    keep = n
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def finish(self) -> str:
        """The held-back text once generation ends for a reason other than a stop string."""
        if self.stopped:
            return ""
        rest = self.tok.decode(self.ids[self.prefix :])[
            len(self.tok.decode(self.ids[self.prefix : self.read])) :
        ]
        out = self._filter(rest)  # may still complete a stop string
        out += self.held  # whatever was held back is not a stop string after all
        self.held, self.stopped = "", True
        return out
