"""Tiny random models and a locally trained tokenizer for the serving tests (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

FAMILY_CLASSES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
}


def tiny_hf_model(family: str, *, seed: int = 0, **overrides):
    """A random fp32 model of the family: 2 layers, GQA 4:2 heads, head_dim 16."""
    cfg_name, model_name = FAMILY_CLASSES[family]
    kwargs = dict(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        head_dim=16,
    )
    kwargs.update(overrides)
    config = getattr(transformers, cfg_name)(**kwargs)
    config.architectures = [model_name]
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():  # HF initialises norms to 1 and biases to 0; randomise so they are tested
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def save_hf(model, path: Path, *, max_shard_size: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    return path


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "Квантование весов до 4 бит почти не ухудшает перплексию больших моделей.",
    "GPTQ uses second-order information to quantize weights layer by layer.",
    "Внимание с INT8 матричным умножением ускоряет длинные контексты 🚀🔥",
    "Continuous batching lets new requests join the running batch between decode steps.",
    "Привет! Как дела? Модель отвечает по-русски и по-английски 😀 🤖 ✨",
]


def train_tokenizer(path: Path, *, vocab_size: int = 300, chat_template: str | None = CHAT_TEMPLATE):
    """Byte-level BPE trained on a few lines, wrapped as a transformers fast tokenizer, saved to path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    if chat_template:
        fast.chat_template = chat_template
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    return fast


def tiny_served_model(
    path: Path,
    *,
    family: str = "llama",
    chat_template: str | None = CHAT_TEMPLATE,
    max_position_embeddings: int = 1024,
) -> Path:
    """Tokenizer + random model whose vocab matches it; special tokens' output rows are zeroed so
    greedy decoding never ends early by chance (a random row would be the argmax now and then)."""
    fast = train_tokenizer(path, chat_template=chat_template)
    eos = fast.convert_tokens_to_ids("<|im_end|>")
    model = tiny_hf_model(
        family, vocab_size=len(fast), eos_token_id=eos, max_position_embeddings=max_position_embeddings
    )
    with torch.no_grad():
        for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
            model.lm_head.weight[fast.convert_tokens_to_ids(special)] = 0.0
    save_hf(model, path)
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["eos_token_id"] == eos
    return path


def build_served_folder(
    path: Path,
    *,
    family: str = "llama",
    bits: int = 4,
    group_size: int = 32,
    max_position_embeddings: int = 1024,
) -> Path:
    """The serving tests' model: tiny_served_model quantized to GPTQ with our own quantizer
    (calibrated on the tokenizer corpus), tokenizer and chat template copied alongside."""
    from inference.gptq.quantize import QuantOptions, quantize_folder

    src = path.parent / f"{path.name}-fp32"
    tiny_served_model(src, family=family, max_position_embeddings=max_position_embeddings)
    quantize_folder(
        src, path, CORPUS * 8, QuantOptions(bits=bits, group_size=group_size), calib_samples=8, seq_len=32
    )
    return path
