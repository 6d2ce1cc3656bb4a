"""A tiny real language model for tests and benchmarks: BPE tokenizer + Llama trained on CPU.

Boundary: plain text in, a HF-format model folder out (config.json, model.safetensors,
tokenizer.json + tokenizer_config.json with a ChatML chat template). Nothing is downloaded: the
tokenizer is trained here with `tokenizers` on the bundled corpus.

Two models: `train_tiny_llm` trains one (minutes of CPU; `benchmarks/gptq_quality.py`), and
`structured_tiny_llm` builds one in seconds, without training, whose weights and activations have
the structure quantizers react to in real LLMs (low-rank correlated embeddings, a few outlier
channels amplified by the norms, rows of uneven scale): the quantizer tests use it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from inference.gptq.quality import perplexity, windows  # noqa: F401 (re-exported for the benchmark)

# A path, not an import: inference/ does not depend on rag/ (the corpus is package data there).
SAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "rag" / "samples" / "corpus"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class TinyConfig:
    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    seq_len: int = 128
    steps: int = 150
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0
    heldout_fraction: float = 0.1


@dataclass
class TinyLLM:
    path: Path
    model: torch.nn.Module  # transformers LlamaForCausalLM, float32, eval mode
    tokenizer: object  # transformers PreTrainedTokenizerFast
    train_ids: torch.Tensor  # (n,) int64 token ids of the training split
    heldout_ids: torch.Tensor  # (m,) held-out blocks from across the corpus (see split_ids)
    final_loss: float


def corpus_text(corpus_dir: Path = SAMPLE_CORPUS) -> str:
    files = sorted(Path(corpus_dir).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{corpus_dir}: no *.txt corpus files")
    return "\n\n".join(f.read_text(encoding="utf-8") for f in files)


def train_tokenizer(text: str, vocab_size: int):
    """Byte-level BPE trained on `text`, wrapped as a transformers fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(text.split("\n"), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(cfg: TinyConfig, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=max(256, cfg.seq_len),
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=4,
        pad_token_id=0,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def split_ids(
    ids: torch.Tensor, heldout_fraction: float, block: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every k-th block of `block` tokens is held out, so held-out text comes from every channel of
    the corpus (the tail alone would be one channel the model barely saw)."""
    every = max(2, round(1 / heldout_fraction))
    blocks = ids.split(block)
    train = [b for i, b in enumerate(blocks) if i % every != every - 1]
    held = [b for i, b in enumerate(blocks) if i % every == every - 1]
    return torch.cat(train), torch.cat(held)


def tokenized_corpus(cfg: TinyConfig, corpus_dir: Path = SAMPLE_CORPUS):
    """(tokenizer trained on the corpus, training ids, held-out ids)."""
    text = corpus_text(corpus_dir)
    tokenizer = train_tokenizer(text, cfg.vocab_size)
    ids = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    return (tokenizer, *split_ids(ids, cfg.heldout_fraction))


def train_tiny_llm(out_dir: Path, cfg: TinyConfig | None = None, corpus_dir: Path = SAMPLE_CORPUS) -> TinyLLM:
    """Train the tokenizer and the model on the corpus, save both to `out_dir` (HF layout)."""
    cfg = cfg or TinyConfig()
    out_dir = Path(out_dir)
    tokenizer, train_ids, heldout_ids = tokenized_corpus(cfg, corpus_dir)
    model = make_model(cfg, len(tokenizer))
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    model.train()
    loss_value = math.nan
    for _ in range(cfg.steps):
        starts = torch.randint(0, train_ids.numel() - cfg.seq_len - 1, (cfg.batch_size,), generator=gen)
        batch = torch.stack([train_ids[s : s + cfg.seq_len] for s in starts.tolist()])  # (B, T)
        loss = model(batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "tiny_config.json").write_text(__import__("json").dumps(asdict(cfg), indent=2))
    return TinyLLM(out_dir, model, tokenizer, train_ids, heldout_ids, loss_value)


def impose_structure_(model: torch.nn.Module, seed: int = 0, rank: int = 16, outliers: int = 4) -> None:
    """Give a freshly initialised Llama the statistics that make GPTQ matter, without training.

    Real LLM activations are strongly correlated across channels and a few channels carry most of
    the energy (Dettmers et al., 2022, "LLM.int8()": outlier features). Round-to-nearest ignores
    both; GPTQ exploits them through the Hessian. So: embeddings of low rank plus a little noise,
    norm weights that amplify the same few channels in every layer, and weight rows of log-normal
    scale (groups of uneven range, as in trained weights). lm_head is built from the embeddings so
    the output distribution is peaked (KL between models is then meaningful).
    """
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    d, vocab = cfg.hidden_size, cfg.vocab_size
    hot = torch.randperm(d, generator=gen)[:outliers]
    with torch.no_grad():
        emb = torch.randn(vocab, rank, generator=gen) @ torch.randn(rank, d, generator=gen) / rank**0.5
        emb += 0.3 * torch.randn(vocab, d, generator=gen)
        model.model.embed_tokens.weight.copy_(emb)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
                p[hot] = 6 + 2 * torch.rand(outliers, generator=gen)
            elif p.dim() == 2 and "embed_tokens" not in name and "lm_head" not in name:
                rows = torch.exp(0.5 * torch.randn(p.shape[0], 1, generator=gen))
                p.copy_(torch.randn(p.shape, generator=gen) * rows / p.shape[1] ** 0.5)
        head = emb / emb.norm(dim=1, keepdim=True) + 0.1 * torch.randn(vocab, d, generator=gen) / d**0.5
        model.lm_head.weight.copy_(head * 2)


def structured_tiny_llm(
    out_dir: Path, cfg: TinyConfig | None = None, corpus_dir: Path = SAMPLE_CORPUS
) -> TinyLLM:
    """Tokenizer trained on the corpus + an untrained Llama given real-LLM structure; saved to out_dir.

    Seconds instead of the minutes `train_tiny_llm` needs, so the quantizer tests can run on a busy
    2-core machine. Its perplexity on text is meaningless; compare models by KL and top-1 instead.
    """
    cfg = cfg or TinyConfig()
    out_dir = Path(out_dir)
    tokenizer, train_ids, heldout_ids = tokenized_corpus(cfg, corpus_dir)
    model = make_model(cfg, len(tokenizer)).eval()
    impose_structure_(model, cfg.seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return TinyLLM(out_dir, model, tokenizer, train_ids, heldout_ids, math.nan)
