"""The model folder's tokenizer: chat template, stop tokens, incremental detokenization.

Boundary: text <-> token ids for one model folder, read with `AutoTokenizer` from the local folder
only (never the hub at run time). `TextStream` turns generated ids into text deltas that never end
inside a UTF-8 sequence and never show a stop string or the text after it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
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


class TokenizerError(InferenceError):
    """The tokenizer files are missing or unusable, or a prompt cannot be rendered."""


@dataclass
class ChatTokenizer:
    """Wraps a transformers tokenizer with what the engine and server need."""

    hf: Any
    stop_token_ids: frozenset[int]
    has_chat_template: bool
    extra_stop: tuple[str, ...] = ()

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

    def stream(self, prompt_ids: list[int], stop: tuple[str, ...] = ()) -> TextStream:
        return TextStream(self, prompt_ids, tuple(s for s in (*stop, *self.extra_stop) if s))


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
            self.stopped = True
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
