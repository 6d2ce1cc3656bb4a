"""Live t.me/s fetching against a local HTTP server on 127.0.0.1 serving saved pages: paging with
?before=, stopping at known posts, offline and bad-URL failures as one line."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from ingest.live import channel_page_url, fetch_channel
from ingest.pipeline import ingest_locations
from rag.errors import IngestError
from rag.store.models import Post
from tests.ingest.tme_pages import page, post, serve

CH = "quant_prune_distill"


def _channel(newest: int = 8, page_size: int = 4):
    """A channel of posts 1..newest served like t.me: the newest `page_size` before `before`."""
    state = {"newest": newest}

    def respond(path: str, before: int | None) -> str | None:
        if path != f"/s/{CH}":
            return None
        top = min(before - 1 if before else state["newest"], state["newest"])
        ids = [i for i in range(top - page_size + 1, top + 1) if i >= 1]
        posts = [
            post(CH, i, f"Пост номер {i} про квантизацию", iso=f"2025-04-{10 + i:02d}T10:00:00+00:00")
            for i in ids
        ]
        return page(CH, "КПД", posts, before=ids[0] if ids else None)

    return state, respond


def test_pages_back_to_the_first_post(tmp_path):
    _, respond = _channel()
    with serve(respond) as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        batch = fetch_channel(url, known_ids=set(), delay_s=0)
        assert server.requests == [f"/s/{CH}", f"/s/{CH}?before=5"]
    assert [p.message_id for p in batch.posts] == list(range(1, 9))
    assert {p.channel for p in batch.posts} == {CH} and batch.posts[0].channel_title == "КПД"
    assert batch.posts[0].text == "Пост номер 1 про квантизацию"


def test_stops_at_posts_it_already_has(tmp_path):
    _, respond = _channel(newest=20)
    with serve(respond) as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        batch = fetch_channel(url, known_ids={1, 2, 14}, delay_s=0)
        assert server.requests == [f"/s/{CH}", f"/s/{CH}?before=17"]  # 13..16 holds known 14
    assert [p.message_id for p in batch.posts] == list(range(13, 21))


def test_stops_when_a_page_adds_nothing_and_at_max_pages():
    with serve(lambda path, before: page(CH, "КПД", [post(CH, 50, "один и тот же пост")])) as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        assert len(fetch_channel(url, known_ids=set(), delay_s=0).posts) == 1
        assert len(server.requests) == 2
    _, respond = _channel(newest=100)
    with serve(respond) as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        assert len(fetch_channel(url, known_ids=set(), delay_s=0, max_pages=3).posts) == 12
        assert len(server.requests) == 3


def test_incremental_ingest_through_the_pipeline(store, monkeypatch):
    # The pipeline calls fetch_channel(url, known_ids=...) with the default polite delay.
    monkeypatch.setattr("ingest.live.time.sleep", lambda s: None)
    state, respond = _channel(newest=8)
    with serve(respond) as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        first = ingest_locations(store, [url])
        assert first.ok and first.summary.new == 8
        state["newest"] = 10
        server.requests.clear()
        second = ingest_locations(store, [url])
        assert second.ok and second.summary.new == 2
        assert server.requests == [f"/s/{CH}"]  # page 1 already holds known posts: no paging
    with store.session() as s:
        links = s.scalars(select(Post.permalink).order_by(Post.message_id)).all()
    assert links == [f"https://t.me/{CH}/{i}" for i in range(1, 11)]


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_offline_is_one_line(store):
    url = f"http://127.0.0.1:{_closed_port()}/s/{CH}"
    with pytest.raises(IngestError) as info:
        fetch_channel(url, known_ids=set(), delay_s=0)
    message = str(info.value)
    assert message.startswith(f"{url}: cannot reach t.me: ") and "\n" not in message
    report = ingest_locations(store, [url])
    assert not report.ok and report.errors[0].startswith(f"{url}: cannot reach t.me: ")


def test_base_url_override_and_bad_urls():
    assert channel_page_url("https://t.me/s/kpd") == ("kpd", "https://t.me/s/kpd")
    assert channel_page_url("https://t.me/kpd/") == ("kpd", "https://t.me/s/kpd")
    assert channel_page_url("https://t.me/s/kpd", "http://127.0.0.1:9") == ("kpd", "http://127.0.0.1:9/s/kpd")
    for bad in ("https://arxiv.org/abs/2401.00001", "https://t.me/kpd/475", "ftp://t.me/s/kpd"):
        with pytest.raises(IngestError, match="not a Telegram channel URL"):
            channel_page_url(bad)


def test_http_errors_and_missing_channel_are_one_line():
    with serve(lambda path, before: None) as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        with pytest.raises(IngestError, match="answered HTTP 404"):
            fetch_channel(url, known_ids=set(), delay_s=0)
    with serve(lambda path, before: "<html><body>Channel preview unavailable</body></html>") as server:
        url = f"http://127.0.0.1:{server.server_port}/s/{CH}"
        with pytest.raises(IngestError, match="no public posts"):
            fetch_channel(url, known_ids=set(), delay_s=0)
