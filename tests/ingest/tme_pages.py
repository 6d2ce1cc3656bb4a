"""Builders of `t.me/s/<channel>` web preview pages in the markup t.me serves, plus a local
HTTP server on 127.0.0.1 that serves them (for the live fetch tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EMOJI_STYLE = "background-image:url('//telegram.org/img/emoji/40/F09F918D.png')"


def emoji(char: str) -> str:
    return f'<i class="emoji" style="{EMOJI_STYLE}"><b>{char}</b></i>'


def post(
    channel: str,
    mid: int,
    text_html: str | None,
    *,
    iso: str = "2025-04-28T20:54:00+00:00",
    owner: str = "КПД",
    views: str | None = "1.2K",
    author: str | None = None,
    edited: bool = False,
    forwarded: str | None = None,
    reply_to: int | None = None,
    reactions: str = "",
    media: str = "",
    service: bool = False,
) -> str:
    cls = "tgme_widget_message text_not_supported_wrap js-widget_message" + (
        " service_message" if service else ""
    )
    parts = [
        '<div class="tgme_widget_message_wrap js-widget_message_wrap">',
        f'<div class="{cls}" data-post="{channel}/{mid}" data-view="eyJjIjotMTAwMTIzNDU2Nzg5LCJwIjo0NzV9">',
        f'<div class="tgme_widget_message_user"><a href="https://t.me/{channel}">'
        '<i class="tgme_widget_message_user_photo bgcolor1" data-content="К">'
        '<img src="https://cdn4.telesco.pe/file/userpic.jpg"></i></a></div>',
        '<div class="tgme_widget_message_bubble"><i class="tgme_widget_message_bubble_tail">'
        '<svg class="bubble_icon" width="9px" height="20px" viewBox="0 0 9 20"><g fill="none"></g></svg></i>',
        f'<div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" '
        f'href="https://t.me/{channel}"><span dir="auto">{owner}</span></a></div>',
    ]
    if forwarded:
        parts.append(
            '<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from '
            f'<a class="tgme_widget_message_forwarded_from_name" href="https://t.me/cv_time/12">'
            f'<span dir="auto">{forwarded}</span></a></div>'
        )
    if reply_to is not None:
        parts.append(
            f'<a class="tgme_widget_message_reply" href="https://t.me/{channel}/{reply_to}">'
            '<div class="tgme_widget_message_author accent_color">'
            f'<span class="tgme_widget_message_author_name" dir="auto">{owner}</span></div>'
            '<div class="tgme_widget_message_text js-message_reply_text" dir="auto">Текст того поста</div></a>'
        )
    parts.append(media)
    if text_html is not None:
        parts.append(f'<div class="tgme_widget_message_text js-message_text" dir="auto">{text_html}</div>')
    if reactions:
        parts.append(f'<div class="tgme_widget_message_reactions js-message_reactions">{reactions}</div>')
    meta = ""
    if author:
        meta += f'<span class="tgme_widget_message_from_author" dir="auto">{author}</span>, '
    if edited:
        meta += '<span class="tgme_widget_message_edited">edited</span>&nbsp;'
    meta += (
        f'<a class="tgme_widget_message_date" href="https://t.me/{channel}/{mid}">'
        f'<time datetime="{iso}" class="time">{iso[11:16]}</time></a>'
    )
    views_html = (
        f'<span class="tgme_widget_message_views">{views}</span><span class="copyonly"> views</span>'
        if views
        else ""
    )
    parts.append(
        '<div class="tgme_widget_message_footer compact js-message_footer">'
        '<div class="tgme_widget_message_info short js-message_info">'
        f'{views_html}<span class="tgme_widget_message_meta">{meta}</span></div></div>'
    )
    parts.append("</div></div></div>")
    return "".join(parts)


def reaction(char: str, count: str, *, paid: bool = False) -> str:
    cls = "tgme_reaction tgme_reaction_paid" if paid else "tgme_reaction"
    return f'<span class="{cls}">{emoji(char)}{count}</span>'


def photo(url: str, link: str) -> str:
    return (
        f'<a class="tgme_widget_message_photo_wrap 5345 blured" href="{link}" '
        f"style=\"width:800px;background-image:url('{url}')\">"
        '<div class="tgme_widget_message_photo" style="padding-top:56.25%"></div></a>'
    )


def page(channel: str, title: str, posts: list[str], before: int | None = None) -> str:
    more = (
        f'<div class="tgme_widget_message_centered js-messages_more_wrap"><a href="/s/{channel}?before={before}" '
        f'data-before="{before}" class="tme_messages_more js-messages_more"></a></div>'
        if before
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html>\n  <head>\n    <meta charset="utf-8">\n'
        f"    <title>{title} – Telegram</title>\n"
        f'    <meta property="og:title" content="{title}">\n'
        f'    <link rel="canonical" href="https://t.me/s/{channel}">\n  </head>\n'
        '  <body class="widget_frame_base tgme_webpreview_body">\n'
        '    <main class="tgme_main"><div class="tgme_container">\n'
        '      <section class="tgme_right_column"><div class="tgme_channel_info">'
        f'<div class="tgme_channel_info_header"><div class="tgme_channel_info_header_title"><span dir="auto">{title}</span></div>'
        f'<div class="tgme_channel_info_header_username"><a href="https://t.me/{channel}">@{channel}</a></div></div>'
        '<div class="tgme_channel_info_description">Канал про сжатие моделей</div></div></section>\n'
        f'      <section class="tgme_channel_history js-message_history">{more}\n'
        + "\n".join(posts)
        + "\n      </section>\n    </div></main>\n  </body>\n</html>\n"
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        before = parse_qs(parts.query).get("before", [None])[0]
        self.server.requests.append(self.path)
        body = self.server.respond(parts.path, int(before) if before else None)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    requests: list[str]
    respond: Callable[[str, int | None], str | None]


@contextmanager
def serve(respond: Callable[[str, int | None], str | None]) -> Iterator[_Server]:
    """A server on 127.0.0.1 answering GET path?before=N with `respond(path, before)` (None: 404)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.respond = respond
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
