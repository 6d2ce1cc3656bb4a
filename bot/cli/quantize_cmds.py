"""`research-bot quantize MODEL_DIR OUT_DIR`: GPTQ-quantize a model on a calibration mix.

Calibration text (`--calib`, repeatable, the sources mixed in equal characters): `mixed` (the
default: posts and papers sampled from the corpus store, the domain the model will answer about,
plus English prose from installed packages' metadata, the language small models know; SmolLM2
calibrated on the Russian posts alone measured worse than round-to-nearest), `corpus`, `english`,
or a UTF-8 text file. `inference.gptq` does the work and never sees the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.app import DataDir, JsonFlag, app, console, print_json, progress_bar, settings_for
from bot.services import open_corpus
from core.errors import ConfigError
from inference.gptq.options import QuantOptions

DEFAULTS = QuantOptions()  # the measured defaults live in one place (benchmarks/gptq_real_model.py)
SOURCES = ("mixed", "corpus", "english")


@app.command()
def quantize(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face model folder (Llama/Qwen/Mistral layout)")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the GPTQ checkpoint to")],
    bits: Annotated[int, typer.Option(help="Bits per weight: 2, 3, 4 or 8")] = 4,
    group_size: Annotated[
        int, typer.Option("--group-size", help="Columns per scale group; -1: per channel")
    ] = 128,
    act_order: Annotated[
        bool,
        typer.Option(
            "--act-order", help="Quantize columns by decreasing activation energy (scatters groups)"
        ),
    ] = DEFAULTS.act_order,
    group_aware: Annotated[
        bool,
        typer.Option(
            "--group-aware/--no-group-aware",
            help="Important groups and columns first, groups kept contiguous",
        ),
    ] = DEFAULTS.group_aware,
    clip_search: Annotated[
        bool, typer.Option("--clip/--no-clip", help="Search each group's range for the least error")
    ] = DEFAULTS.clip_search,
    sym: Annotated[
        bool,
        typer.Option(
            "--sym/--asym",
            help="Symmetric grid (what vLLM's Marlin kernels need) or asymmetric (default: lower error)",
        ),
    ] = DEFAULTS.sym,
    calib_samples: Annotated[int, typer.Option("--calib-samples", help="Calibration windows")] = 128,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per calibration window")] = 512,
    damp_percent: Annotated[
        float, typer.Option("--damp", help="Hessian dampening, fraction of its mean diagonal")
    ] = DEFAULTS.damp_percent,
    checkpoint_format: Annotated[
        str, typer.Option("--format", help="gptq (v1 zeros, widely read) or gptq_v2")
    ] = "gptq",
    rtn: Annotated[
        bool, typer.Option("--rtn", help="Round-to-nearest instead of GPTQ (the baseline)")
    ] = False,
    calib: Annotated[
        list[str] | None,
        typer.Option(
            "--calib",
            help="mixed (default: corpus + English), corpus, english or a UTF-8 text file; repeatable",
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Quantize MODEL_DIR to a GPTQ checkpoint in OUT_DIR, calibrated on corpus posts mixed with English prose."""
    from inference.gptq.quantize import quantize_folder

    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ConfigError(f"--format {checkpoint_format!r}: expected gptq or gptq_v2")
    if calib_samples <= 0:
        raise ConfigError(f"--calib-samples {calib_samples}: must be positive")
    opts = QuantOptions(
        bits=bits,
        group_size=group_size,
        sym=sym,
        act_order=act_order,
        group_aware=group_aware,
        clip_search=clip_search,
        damp_percent=damp_percent,
        zero_format="v1" if checkpoint_format == "gptq" else "v2",
    )
    texts = _calibration_texts(calib or ["mixed"], calib_samples, data_dir)
    with progress_bar("quantize", hidden=as_json) as progress:
        task = progress.add_task("calibrating", total=None)

        def on_layer(done: int, total: int, name: str) -> None:
            progress.update(task, completed=done, total=total, description=name)

        summary = quantize_folder(
            model_dir,
            out_dir,
            texts,
            opts,
            calib_samples=calib_samples,
            seq_len=seq_len,
            method="rtn" if rtn else "gptq",
            on_layer=on_layer,
        )
    summary["texts"] = len(texts)
    if as_json:
        print_json(summary)
        return
    if summary["group_size"] != group_size:
        console.print(
            f"group size {group_size} does not divide every layer's width; used {summary['group_size']}",
            highlight=False,
        )
    console.print(
        f"wrote {summary['layers']} quantized layers ({bits}-bit, group {summary['group_size']}, {summary['method']}) to "
        f"{out_dir}, calibrated on {summary['calib_samples']} windows of {summary['seq_len']} tokens",
        highlight=False,
    )
    if not sym:
        # GPTQModel 7.7's loader refuses sym=False checkpoints in the gptq (v1) format unless it
        # made them itself; serve-llm and vLLM (its GPTQ kernel, not Marlin) read them
        console.print(
            "asymmetric grid: serve-llm and vLLM read it; for GPTQModel or vLLM's Marlin kernels "
            "quantize with --sym",
            highlight=False,
        )


def _calibration_texts(choices: list[str], calib_samples: int, data_dir: Path | None) -> list[str]:
    """The texts of each --calib source, mixed in equal characters."""
    from inference.gptq.calibration import english_texts, file_texts, mix

    sources = []
    for choice in choices:
        if choice in ("mixed", "english"):
            english = english_texts()
            if not english:  # a slim install without the packages whose descriptions are the text
                raise ConfigError(
                    "no English calibration text found in the installed packages' descriptions: "
                    "pass --calib corpus or --calib FILE"
                )
            sources.append(english)
        if choice in ("mixed", "corpus"):
            store = open_corpus(settings_for(data_dir))
            # Enough texts to fill the windows: posts are short, so oversample and let the tokenizer cut.
            corpus = store.sample_texts(max(calib_samples * 8, 64))
            if not corpus:
                raise ConfigError(
                    "the corpus is empty, nothing to calibrate on: run `research-bot ingest` first, "
                    "or pass --calib english or --calib FILE"
                )
            sources.append(corpus)
        if choice not in SOURCES:
            sources.append(file_texts([Path(choice)]))
    return mix(*sources)
