"""The two text filters every user-controlled string passes through before it leaves the process:
`bot.cli.output` (terminal) and `rag.redact` (secrets), on adversarial and arbitrary input."""

from __future__ import annotations

import io
import logging

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from bot.cli.output import json_safe, plain, safe
from rag.redact import install_log_redaction, redact, register_secret

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX"
PIECES = [*"[]/\\=ab :;\x1b\x07\x9b\x9d\x9c\r\u202e", "[/x]", "[link=", "\x1b]8;;", "[bold]"]
NASTY = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_safe_text_never_breaks_rich_nor_reaches_the_terminal_raw(text):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200, emoji=False)  # as bot.cli.app's
    console.print(f"[bold]x[/bold] {safe(text)}", highlight=False, soft_wrap=True)
    console.print(plain(text), markup=False, highlight=False, soft_wrap=True)
    written = out.getvalue()
    assert not any(c in written for c in "\x1b\x07\x9b\x9d\x9c\r\u202e")
    assert plain(text).replace("\\", "") in written.replace("\\", "")  # the visible text survives


def test_known_escape_sequences_are_removed_and_text_kept():
    text = "a\x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ \x9b2Jb\rc"
    assert plain(text) == "ared link bc"  # \x9b2J is the 8-bit CSI "clear screen"
    assert json_safe('"\x9b\u202e"') == '"\\u009b\\u202e"'


def test_redact_masks_urls_tokens_and_registered_secrets():
    register_secret("webhook_Secret-xyz")
    text = (
        f"postgresql+psycopg://u:Pw-1@h/db http://h/v1?api-key=K-2&x=1 https://api.telegram.org/bot{TOKEN}/getMe "
        "header webhook_Secret-xyz; time 12:30:45 and sqlite:////tmp/a.db stay"
    )
    out = redact(text)
    for secret in ("Pw-1", "K-2", TOKEN.split(":")[1], "webhook_Secret-xyz"):
        assert secret not in out
    assert "12:30:45" in out and "sqlite:////tmp/a.db" in out and "x=1" in out


def test_aiogram_polling_error_with_the_token_in_its_url_is_logged_redacted(caplog):
    """aiogram logs polling failures with the exception; aiohttp's URL errors carry the request
    URL, which holds the bot token (`/bot<token>/getUpdates`)."""
    install_log_redaction()
    error = aiohttp.InvalidURL(f"https://api.telegram.org/bot{TOKEN}/getUpdates")
    try:
        raise error
    except aiohttp.InvalidURL:
        logging.getLogger("aiogram.dispatcher").exception("Failed to fetch updates - %s", error)
    assert "Failed to fetch updates" in caplog.text and "getUpdates" in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text


def test_redact_masks_url_passwords_holding_slash_hash_or_at():
    """Users paste passwords unencoded; SQLAlchemy reads up to the last `@`, and a missing driver's
    error quotes the URL as given, so `/`, `#` and `@` in the password must not end the mask."""
    for password in ("Db/Pw-4417", "Db#Pw-4417", "Db@Pw-4417", "Db?Pw-4417"):
        out = redact(f"cannot use database URL 'mysql+mysqldb://reader:{password}@127.0.0.1/corpus': no")
        assert "Pw-4417" not in out and "reader:" in out and "@127.0.0.1/corpus'" in out, out
    assert redact("http://u:pw@host/p?q=a@b c") == "http://u:***@host/p?q=a@b c"  # query keeps its @


def test_cli_consoles_print_emoji_codes_as_text():
    """Rich turns `:thumbs_up:` into 👍 unless the console says not to; `safe` cannot escape it."""
    from bot.cli.app import console, err_console

    for target in (console, err_console):
        with target.capture() as captured:
            target.print(f"[red]x[/red] {safe('see :thumbs_up: and :a:')}", highlight=False)
        assert "see :thumbs_up: and :a:" in captured.get()
