"""`research-bot crosspost SOURCE --to x,bluesky,... [--lang en] [--json]`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.app import DataDir, JsonFlag, app, console, err_console, print_json, settings_for
from bot.cli.output import inert, plain, safe
from bot.services import convert_post, open_corpus
from crosspost import DEFAULT_TARGETS  # not crosspost.service: every command would load twitter-text


@app.command()
def crosspost(
    source: Annotated[
        str,
        typer.Argument(
            help="https://t.me/<channel>/<id>, <channel>/<id>, a .txt/.md/.json file, or - for stdin"
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="Networks, comma-separated")] = ",".join(DEFAULT_TARGETS),
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="Target language, default en (env RESEARCH_BOT_CROSSPOST_LANG)"),
    ] = None,
    restyle: Annotated[
        bool, typer.Option("--restyle", help="Adapt the style per network with the LLM")
    ] = False,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="TOML/YAML file overriding per-network rules")
    ] = None,
    glossary: Annotated[
        Path | None, typer.Option("--glossary", help="Glossary file: 'term = translation' lines")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, text, markdown or telegram-json")] = "auto",
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert a Telegram post into ready-to-publish posts for other networks (translated when an LLM is set)."""
    settings = settings_for(data_dir)
    # The store resolves permalinks, keeps history and caches translations (files and stdin too).
    store = open_corpus(settings)
    result = convert_post(  # loads crosspost.service (twitter-text, openai) only now
        settings,
        store,
        source,
        targets=to.split(","),
        lang=lang,
        restyle=restyle,
        rules_file=rules,
        glossary_file=glossary,
        fmt=fmt,
        stdin=sys.stdin,
    )
    if as_json:
        print_json(result.to_json())
        if result.failed:  # the JSON names each failed network; the exit code says one failed
            raise typer.Exit(1)
        return
    for notice in result.notices:
        err_console.print(f"[yellow]note:[/yellow] {safe(notice)}", highlight=False, soft_wrap=True)
    for name, target in result.targets.items():
        if target.error:  # one network that cannot take the post does not stop the others
            console.rule(f"[bold red]{safe(name)}[/bold red] · failed")
            err_console.print("error: " + plain(target.error), markup=False, highlight=False, soft_wrap=True)
            continue
        for notice in target.notices:
            err_console.print(
                f"[yellow]note:[/yellow] {safe(name)}: {safe(notice)}", highlight=False, soft_wrap=True
            )
        flag = " translated" if target.translated else ""
        console.rule(f"[bold]{safe(name)}[/bold] · {len(target.parts)} part(s){flag}")
        for number, part in enumerate(target.parts, 1):
            limit = f"/{part.limit}" if part.limit else ""
            console.print(f"[dim][{number}] {part.length}{limit}[/dim]", highlight=False)
            console.print(inert(part.text), highlight=False, markup=False, soft_wrap=True)
    if result.failed:
        failed = plain(", ".join(result.failed))
        err_console.print(
            f"failed: {failed} (the other networks were converted)", markup=False, highlight=False
        )
        raise typer.Exit(1)
