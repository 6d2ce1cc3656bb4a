"""The bundled multilingual-e5-small written directly as a fused ONNX graph, from the package's
weights, in seconds and without torch.

`fused_model(weights)` returns `<cache>/e5-graph-<recipe>-<weights>.onnx`, building it once per
recipe (this builder's version + the sha256 of the package's model file). The graph takes the
word-embedding rows (B, T, H) (the lookup happens in numpy over the 4-bit table, so the 250k x 384
table never becomes a 384 MB float tensor) plus the attention mask (B, T), and returns the last
hidden state (B, T, H); mean pooling and L2 normalization happen in `rag.e5_runtime`.

Each layer is ONNX Runtime's fused CPU kernels (com.microsoft domain): one QKV projection,
MultiHeadAttention with the key padding mask, SkipLayerNormalization (residual + bias + LN in one
pass), BiasGelu (exact erf GELU, as the engine). The projections are either
- "int8": int8 weights per output channel, requantized from the package's Q4 values, in
  DynamicQuantizeMatMul (activations quantized per call, u8 x s8 GEMM), or
- "fp32": the dequantized Q4 values as float32 MatMul (the converted folder's exact numbers).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rag.e5_weights import E5Model, default_cache_dir, file_digest, model_path, read_model

GRAPH_VERSION = 1
WEIGHTS = ("int8", "fp32")
_MS = "com.microsoft"


def fused_model(weights: str = "int8", cache_dir: Path | None = None) -> tuple[Path, Path]:
    """(graph, word table) for the bundled model, built at most once per recipe and weights kind.
    The word table is the package's Q4 blocks of the word embeddings, (vocab, H / 32) blocks, .npy."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, not {weights!r}")
    cache_dir = cache_dir or default_cache_dir()
    stem = f"e5-graph-v{GRAPH_VERSION}-{file_digest(model_path(), cache_dir)[:16]}"
    graph, table = cache_dir / f"{stem}-{weights}.onnx", cache_dir / f"{stem}-word.npy"
    if graph.is_file() and table.is_file():
        return graph, table
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = read_model()
    for dest, write in (
        (table, lambda f: np.save(f, model.q4["emb.word"].reshape(model.config["vocab"], -1))),
        (graph, lambda f: f.write(build_graph(model, weights).SerializeToString())),
    ):
        if not dest.is_file():
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                write(f)
            tmp.replace(dest)  # atomic: a reader sees no file or a whole one
    return graph, table


def build_graph(model: E5Model, weights: str = "int8"):
    """The encoder as an onnx.ModelProto: inputs `embeds` (B, T, H) float32 (word-embedding rows)
    and `attention_mask` (B, T) int64; output `hidden` (B, T, H)."""
    from onnx import TensorProto, helper, numpy_helper

    c, t = model.config, model.tensors
    hidden, heads = c["hidden"], c["heads"]
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain or None, **attrs))
        return output

    def linear(x: str, w: np.ndarray, name: str) -> str:
        """x @ w.T without bias; w is (out, in) as stored."""
        if weights == "fp32":
            return node("MatMul", [x, const(f"{name}.w", w.T.astype(np.float32))], name)
        scale = np.abs(w).max(axis=1) / 127.0  # (out,): one scale per output channel
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8).T  # (in, out)
        return node(
            "DynamicQuantizeMatMul",
            [
                x,
                const(f"{name}.q", q),
                const(f"{name}.s", scale.astype(np.float32)),
                const(f"{name}.z", np.zeros(w.shape[0], np.int8)),
            ],
            name,
            domain=_MS,
        )

    def skip_norm(x: str, residual: str, norm: str, bias: np.ndarray, output: str) -> str:
        """LayerNorm(x + bias + residual) in one kernel; `norm` names the LN's .w/.b tensors."""
        ln = [const(f"{norm}.w", t[f"{norm}.w"]), const(f"{norm}.b", t[f"{norm}.b"])]
        inputs = [x, residual, *ln, const(f"{output}.bias", bias)]
        return node("SkipLayerNormalization", inputs, output, domain=_MS, epsilon=c["eps"])

    # embeddings: word rows + position rows 0..T-1 + token type 0, then LayerNorm
    positions = t["emb.pos"] + t["emb.type"][0]  # (P, H): the type row folded in
    shape = node("Shape", ["embeds"], "emb.shape")
    length = node("Slice", [shape, const("one", np.array([1])), const("two", np.array([2]))], "emb.len")
    pos = node("Slice", [const("emb.positions", positions), const("zero", np.array([0])), length], "emb.pos")
    summed = node("Add", ["embeds", pos], "emb.sum")  # (B, T, H)
    h = node(
        "LayerNormalization",
        [summed, const("emb.ln.w", t["emb.ln.w"]), const("emb.ln.b", t["emb.ln.b"])],
        "emb.out",
        axis=-1,
        epsilon=c["eps"],
    )
    mask = node("Cast", ["attention_mask"], "mask32", to=TensorProto.INT32)  # (B, T) key padding mask
    for i in range(c["layers"]):
        p = f"l{i}"
        qkv_w = np.concatenate([t[f"{p}.q.w"], t[f"{p}.k.w"], t[f"{p}.v.w"]])  # (3H, H)
        qkv = linear(h, qkv_w, f"{p}.qkv")  # (B, T, 3H)
        nodes.append(
            helper.make_node(
                "Split",
                [qkv, const(f"{p}.split", np.array([hidden] * 3))],
                [f"{p}.q", f"{p}.k", f"{p}.v"],
                name=f"{p}.split",
                axis=-1,
            )
        )
        bias = np.concatenate([t[f"{p}.q.b"], t[f"{p}.k.b"], t[f"{p}.v.b"]])
        att = node(
            "MultiHeadAttention",
            [f"{p}.q", f"{p}.k", f"{p}.v", const(f"{p}.qkv.b", bias), mask],
            f"{p}.att",
            domain=_MS,
            num_heads=heads,
        )  # (B, T, H)
        ao = linear(att, t[f"{p}.ao.w"], f"{p}.ao")
        h = skip_norm(ao, h, f"{p}.aln", t[f"{p}.ao.b"], f"{p}.h1")
        ff = node(
            "BiasGelu",
            [linear(h, t[f"{p}.fi.w"], f"{p}.fi"), const(f"{p}.fi.b", t[f"{p}.fi.b"])],
            f"{p}.gelu",
            domain=_MS,
        )  # (B, T, F)
        fo = linear(ff, t[f"{p}.fo.w"], f"{p}.fo")
        h = skip_norm(fo, h, f"{p}.oln", t[f"{p}.fo.b"], f"{p}.h2" if i < c["layers"] - 1 else "hidden")
    graph = helper.make_graph(
        nodes,
        "e5",
        [
            helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["b", "t", hidden]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", "t", hidden])],
        inits,
    )
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_MS, 1)])
    out.ir_version = 8  # what ONNX Runtime 1.16+ reads (the onnx package writes newer by default)
    return out
