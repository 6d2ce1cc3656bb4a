"""`@writes_corpus`: a CLI command that changes the store or the indexes holds the data dir's
writer lock (bot.writer_lock) for its whole run; a second one waits and says so in one line."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from bot.cli.app import err_console, settings_for
from bot.cli.output import safe
from bot.writer_lock import writer_lock

F = TypeVar("F", bound=Callable[..., Any])


def writes_corpus(command: F) -> F:
    @functools.wraps(command)  # typer reads the signature through __wrapped__
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings = settings_for(kwargs.get("data_dir"))
        with contextlib.ExitStack() as stack:
            engine = None
            if settings.resolved_database_url.startswith("postgresql"):
                from rag.store.db import make_engine

                engine = make_engine(settings.resolved_database_url)
                stack.callback(engine.dispose)
            stack.enter_context(
                writer_lock(
                    settings.data_dir,
                    command.__name__.removesuffix("_cmd"),
                    engine=engine,
                    on_wait=lambda line: err_console.print(safe(line), highlight=False, soft_wrap=True),
                )
            )
            return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
