"""Fetching a public channel's web preview live: `research-bot ingest https://t.me/s/<channel>`.

Pages back from the newest posts with `?before=<smallest id seen>` at a polite rate (one request
per `delay_s`), and stops at posts the store already has, when a page adds nothing new, at the
first post of the channel, or after `max_pages`. Only HTTP: parsing is `tme_preview`'s.
A URL on another host with the same `/s/<channel>` path is fetched from that host as is (a local
mirror, the tests' server on 127.0.0.1); `base_url` redirects t.me URLs elsewhere.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import httpx

from core.errors import IngestError
from ingest.clean import finish_batch
from ingest.parsers.tme_preview import parse_preview_html
from rag.store.records import PostRecord, SourceBatch

TELEGRAM_HOSTS = {"t.me", "www.t.me", "telegram.me", "www.telegram.me"}
CHANNEL_PATH = re.compile(r"^/(?:s/)?([A-Za-z0-9_]{3,64})/?$")
USER_AGENT = "research-bot/0.1 (channel ingest; one request per second)"
MAX_RETRY_AFTER_S = 30.0


def channel_page_url(url: str, base_url: str | None = None) -> tuple[str, str]:
    """(channel username, URL of its preview page) for `https://t.me/s/<channel>` or `https://t.me/<channel>`."""
    parts = urlsplit(url.strip())
    match = CHANNEL_PATH.match(parts.path or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or match is None:
        raise IngestError(f"{url}: not a Telegram channel URL (expected https://t.me/s/<channel>)")
    channel = match.group(1)
    if parts.netloc.lower() in TELEGRAM_HOSTS:
        base = (base_url or "https://t.me").rstrip("/")
    else:
        base = f"{parts.scheme}://{parts.netloc}"
    return channel, f"{base}/s/{channel}"


def _get(client: httpx.Client, url: str, page_url: str, params: dict[str, int]) -> str:
    for attempt in range(2):
        try:
            response = client.get(page_url, params=params)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise IngestError(f"{url}: cannot reach t.me: {reason}") from exc
        if response.status_code == 429 and attempt == 0:
            # Flood control: wait as asked (bounded), once.
            try:
                wait = float(response.headers.get("Retry-After", "5"))
            except ValueError:
                wait = 5.0
            time.sleep(min(max(wait, 0.0), MAX_RETRY_AFTER_S))
            continue
        if response.status_code != 200:
            raise IngestError(f"{url}: t.me answered HTTP {response.status_code} for {response.url}")
        return response.text
    raise IngestError(f"{url}: t.me keeps answering 429 Too Many Requests; try again later")


def fetch_channel(
    url: str,
    *,
    known_ids: set[int],
    delay_s: float = 1.0,
    max_pages: int = 50,
    client: httpx.Client | None = None,
    base_url: str | None = None,
) -> SourceBatch:
    """Every post on the channel's preview pages back to the first one already in `known_ids`."""
    channel, page_url = channel_page_url(url, base_url)
    own_client = client is None
    http = client or httpx.Client(
        timeout=httpx.Timeout(20.0), follow_redirects=True, headers={"User-Agent": USER_AGENT}
    )
    posts: dict[int, PostRecord] = {}
    skipped = 0
    title: str | None = None
    try:
        before: int | None = None
        for page_number in range(max_pages):
            if page_number:
                time.sleep(delay_s)
            html = _get(http, url, page_url, {"before": before} if before else {})
            page = parse_preview_html(html, page_url)
            title = title or page.title
            skipped += page.skipped
            fresh = [p for p in page.posts if p.message_id is not None and p.message_id not in posts]
            if page_number == 0 and not page.posts and not page.skipped:
                raise IngestError(
                    f"{url}: no public posts at {page_url} (no such channel, or it has no web preview)"
                )
            for post in fresh:
                post.channel = channel
                posts[post.message_id] = post
            ids = [p.message_id for p in page.posts if p.message_id is not None]
            if not fresh or not ids or known_ids.intersection(ids) or min(ids) <= 1:
                break
            before = min(ids)
    finally:
        if own_client:
            http.close()
    batch = SourceBatch(
        location=url,
        format="tme-live",
        posts=sorted(posts.values(), key=lambda p: p.message_id or 0),
        skipped=skipped,
    )
    for post in batch.posts:
        post.channel_title = post.channel_title or title
    return finish_batch(batch, near_duplicates=False)
