"""Entry point of `research-bot`: imports the command modules and maps user errors to one line.

Every command module registers its commands on `bot.cli.app.app`. User errors (`AppError`,
`inference` input errors) print one line on stderr (secrets masked, markup and control characters
neutralised) and exit 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from bot.cli.app import app, err_console
from bot.cli.output import safe
from rag.redact import install_log_redaction

# The command modules; each one is a feature's commands. Add a module here to add commands.
COMMAND_MODULES = [
    "bot.cli.ingest_cmds",
    "bot.cli.bot_cmds",
    "bot.cli.llm_cmds",
    "bot.cli.rag_cmds",
    "bot.cli.crosspost_cmds",
    "bot.cli.quantize_cmds",
]


def _user_error_types() -> tuple[type[BaseException], ...]:
    from core.errors import AppError

    types: list[type[BaseException]] = [AppError]
    try:
        from inference.errors import InferenceError

        types.append(InferenceError)
    except ImportError:
        pass
    return tuple(types)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=os.environ.get("RESEARCH_BOT_LOG_LEVEL", "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # tokens, keys and URL passwords never reach a log line
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    user_errors = _user_error_types()
    try:
        app(args=argv, prog_name="research-bot", standalone_mode=True)
    except user_errors as exc:
        err_console.print(f"[red]error:[/red] {safe(exc)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
