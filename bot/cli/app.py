"""The Typer application and the options every command shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.settings import Settings, load_settings
from rag.samples import SAMPLE_CORPUS as SAMPLE_CORPUS  # package data: the demo's corpus

app = typer.Typer(
    name="research-bot",
    help="Telegram bot and RAG assistant over ML research channels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: rich mode read `[substrings]` and `[env: …]` in help texts as markup
    # (eval's help showed `"expect": }`) and labelled every flag `<bool>`.
    rich_markup_mode=None,
)
# emoji=False: rich would turn `:thumbs_up:` in a post, a file name or an error into 👍, and
# rich.markup.escape has no escape for it (bot.cli.output.safe covers only markup).
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data folder (database, indexes, caches) [env: RESEARCH_BOT_DATA_DIR]"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text")]


def progress_bar(label: str, *, hidden: bool = False) -> Progress:
    """The one progress bar style of the CLI, on stderr so --json output stays clean."""
    return Progress(
        TextColumn(f"[bold]{label}[/bold] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        # Off when stderr is not a terminal: a transient bar there leaves only a blank line.
        disable=hidden or not err_console.is_terminal,
    )


def settings_for(data_dir: Path | None) -> Settings:
    return load_settings(data_dir)


def print_json(obj: Any) -> None:
    from bot.cli.output import json_safe

    typer.echo(json_safe(json.dumps(obj, ensure_ascii=False, default=str)))
