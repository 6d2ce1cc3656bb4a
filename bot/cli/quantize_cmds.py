"""`research-bot quantize MODEL_DIR OUT_DIR`: GPTQ-quantize a model on text sampled from the corpus.

The corpus store supplies the calibration text (posts and papers), so the model is calibrated on
the domain it will answer about; `--calib FILE` uses text files instead (text in the language the
model knows: SmolLM2 is English-only, and calibrating it on Russian posts measured worse than
round-to-nearest). `inference.gptq.quantize` does the work and never sees posts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.app import DataDir, JsonFlag, app, console, print_json, progress_bar, settings_for
from bot.services import open_corpus
from core.errors import ConfigError


@app.command()
def quantize(
    model_dir: Annotated[Path, typer.Argument(help="Hugging Face model folder (Llama/Qwen/Mistral layout)")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the GPTQ checkpoint to")],
    bits: Annotated[int, typer.Option(help="Bits per weight: 2, 3, 4 or 8")] = 4,
    group_size: Annotated[
        int, typer.Option("--group-size", help="Columns per scale group; -1: per channel")
    ] = 128,
    act_order: Annotated[
        bool, typer.Option("--act-order", help="Quantize columns by decreasing activation energy")
    ] = False,
    sym: Annotated[
        bool, typer.Option("--sym/--asym", help="Symmetric (zero at mid-range) or asymmetric grid")
    ] = True,
    calib_samples: Annotated[int, typer.Option("--calib-samples", help="Calibration windows")] = 128,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per calibration window")] = 512,
    damp_percent: Annotated[
        float, typer.Option("--damp", help="Hessian dampening, fraction of its mean diagonal")
    ] = 0.01,
    checkpoint_format: Annotated[
        str, typer.Option("--format", help="gptq (v1 zeros, widely read) or gptq_v2")
    ] = "gptq",
    rtn: Annotated[
        bool, typer.Option("--rtn", help="Round-to-nearest instead of GPTQ (the baseline)")
    ] = False,
    calib: Annotated[
        list[Path] | None,
        typer.Option("--calib", help="Calibrate on this UTF-8 text file instead of the corpus (repeatable)"),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Quantize MODEL_DIR to a GPTQ checkpoint in OUT_DIR, calibrated on posts and papers of the corpus."""
    from inference.gptq.quantize import QuantOptions, quantize_folder

    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ConfigError(f"--format {checkpoint_format!r}: expected gptq or gptq_v2")
    if calib_samples <= 0:
        raise ConfigError(f"--calib-samples {calib_samples}: must be positive")
    opts = QuantOptions(
        bits=bits,
        group_size=group_size,
        sym=sym,
        act_order=act_order,
        damp_percent=damp_percent,
        zero_format="v1" if checkpoint_format == "gptq" else "v2",
    )
    if calib:
        texts = []
        for path in calib:
            try:
                texts += [t for t in path.read_text(encoding="utf-8").split("\n\n") if t.strip()]
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"--calib {path}: cannot read it as UTF-8 text ({exc.__class__.__name__})"
                ) from None
        if not texts:
            raise ConfigError("--calib: the files hold no text to calibrate on")
    else:
        store = open_corpus(settings_for(data_dir))
        # Enough texts to fill the windows: posts are short, so oversample and let the tokenizer cut.
        texts = store.sample_texts(max(calib_samples * 8, 64))
        if not texts:
            raise ConfigError("the corpus is empty, nothing to calibrate on: run `research-bot ingest` first")
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
