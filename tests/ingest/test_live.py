"""Live t.me/s fetching against a local HTTP server on 127.0.0.1 serving saved pages: paging with
?before=, stopping at known posts, offline and bad-URL failures as one line."""

from __future__ import annotations

import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.errors import IngestError
from ingest.live import channel_page_url, fetch_channel
from ingest.pipeline import ingest_locations
from rag.store.models import Post
from tests.ingest.tme_pages import page, post, serve

# lxml elements are falsy when childless: `el or other` is a bug, so the warning fails the test.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

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


# --- property tests: whatever t.me answers, fetching only ever raises IngestError -----------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from([200, 200, 200, 302, 404, 429, 500]), st.binary(max_size=600)),
        min_size=1,
        max_size=4,
    )
)
def test_any_answer_only_raises_ingest_error(answers):
    calls = iter(answers * 60)

    def handler(request: httpx.Request) -> httpx.Response:
        status, body = next(calls)
        headers = {"Retry-After": "0"} if status == 429 else {}
        return httpx.Response(status, content=body, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        try:
            batch = fetch_channel(
                f"https://t.me/s/{CH}", known_ids=set(), delay_s=0, client=client, max_pages=5
            )
        except IngestError as exc:
            assert "\n" not in str(exc)
            return
    assert all(p.channel == CH for p in batch.posts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 60), min_size=1, max_size=15), st.sets(st.integers(1, 60), max_size=5))
def test_paging_terminates_and_never_repeats_a_request(ids_on_first_page, known):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        before = request.url.params.get("before")
        top = int(before) if before else max(ids_on_first_page) + 1
        ids = sorted({i for i in ids_on_first_page if i < top} or {max(1, top - 1)})
        return httpx.Response(200, text=page(CH, "КПД", [post(CH, i, f"пост {i}") for i in ids]))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        batch = fetch_channel(f"https://t.me/s/{CH}", known_ids=known, delay_s=0, client=client)
    assert len(seen) == len(set(seen)) <= 50
    assert len({p.message_id for p in batch.posts}) == len(batch.posts)
