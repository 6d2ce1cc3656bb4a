"""A saved `t.me/s/<channel>` page: every field of every post, entities with UTF-16 offsets,
service messages skipped, permalinks after ingest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.errors import IngestError
from ingest.clean import clean_text
from ingest.parsers.tme_preview import TmePreviewPage, parse_count
from ingest.pipeline import ingest_locations
from ingest.registry import RawSource, detect
from rag.store.models import Channel, Paper, Post, PostPaper
from tests.ingest.fuzz import check_parser, html_soup, mutations
from tests.ingest.tme_pages import emoji, page, photo, post, reaction

# lxml elements are falsy when childless: `el or other` is a bug, so the warning fails the test.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

CH = "quant_prune_distill"
RICH = (
    'Статья <a href="https://arxiv.org/abs/2410.02367" target="_blank" rel="noopener">SageAttention</a> — '
    "<b>2x</b> быстрее<br/><i>курсив</i> <code>int8</code> "
    '<a href="?q=%23quant">#quant</a> <a href="https://t.me/thu_ml">@thu_ml</a><br/>'
    '<a href="https://github.com/thu-ml/SageAttention" target="_blank" rel="noopener">github.com/thu-ml/SageAttention</a> '
    f'<tg-emoji emoji-id="5368324170671202286">{emoji("🔥")}</tg-emoji> {emoji("👍")}<br/>'
    '<pre><code class="language-python">q = quantize(k)</code></pre>'
)
RICH_TEXT = (
    "Статья SageAttention — 2x быстрее\nкурсив int8 #quant @thu_ml\n"
    "github.com/thu-ml/SageAttention 🔥 👍\nq = quantize(k)"
)
UNSUPPORTED = (
    '<div class="message_media_not_supported_wrap"><div class="message_media_not_supported">'
    '<div class="message_media_not_supported_label">Please open Telegram to view this post</div>'
    f'<a href="https://t.me/{CH}/478?single" class="message_media_view_in_telegram">VIEW IN TELEGRAM</a></div></div>'
)


def _page(tmp_path):
    posts = [
        post(
            CH,
            475,
            RICH,
            author="Denis",
            edited=True,
            reactions=reaction("👍", "1.2K") + reaction("⭐", "5", paid=True),
            media=photo("https://cdn4.telesco.pe/file/photo475.jpg", f"https://t.me/{CH}/475"),
        ),
        post(
            CH,
            476,
            "Ответ про arXiv:2501.00001",
            iso="2025-04-29T08:00:00+03:00",
            views="987",
            forwarded="CV Time",
            reply_to=475,
        ),
        post(CH, 477, "Channel photo updated", service=True, views=None),
        post(CH, 478, None, views="15", media=UNSUPPORTED),
    ]
    path = tmp_path / "quant_prune_distill.html"
    path.write_text(page(CH, "КПД", posts, before=475), encoding="utf-8")
    return path


VALID_PAGE = page(
    CH,
    "КПД",
    [
        post(CH, 475, RICH, author="Denis", edited=True, reactions=reaction("👍", "1.2K")),
        post(CH, 476, "Ответ", forwarded="CV Time", reply_to=475, media=UNSUPPORTED),
    ],
).encode()


def test_every_field_is_stored_with_permalinks(store, tmp_path):
    path = _page(tmp_path)
    report = ingest_locations(store, [str(path)])
    assert report.ok, report.errors
    assert (report.summary.new, report.summary.dropped) == (3, 1)
    with store.session() as s:
        channel = s.scalar(select(Channel))
        assert (channel.username, channel.title) == (CH, "КПД")
        posts = {p.message_id: p for p in s.scalars(select(Post))}
        assert sorted(posts) == [475, 476, 478]
        rich = posts[475]
        assert rich.text == RICH_TEXT
        assert rich.permalink == f"https://t.me/{CH}/475"
        assert rich.date.replace(tzinfo=UTC) == datetime(2025, 4, 28, 20, 54, tzinfo=UTC)
        assert rich.edited_at is not None  # the page says "edited" without a time
        assert rich.author == "Denis" and rich.views == 1200
        assert rich.reactions == {"👍": 1200, "⭐": 5}
        assert rich.links == ["https://arxiv.org/abs/2410.02367", "https://github.com/thu-ml/SageAttention"]
        assert rich.media == [
            {
                "media_type": "photo",
                "url": "https://cdn4.telesco.pe/file/photo475.jpg",
                "link": f"https://t.me/{CH}/475",
            }
        ]
        units = rich.text.encode("utf-16-le")

        def covered(entity):
            return units[2 * entity["offset"] : 2 * (entity["offset"] + entity["length"])].decode("utf-16-le")

        by_type = {e["type"]: e for e in rich.entities}
        assert by_type["text_link"] == {
            "type": "text_link",
            "offset": 7,
            "length": 13,
            "url": "https://arxiv.org/abs/2410.02367",
        }
        assert [covered(by_type[t]) for t in ("bold", "italic", "code", "hashtag", "mention", "url")] == [
            "2x",
            "курсив",
            "int8",
            "#quant",
            "@thu_ml",
            "github.com/thu-ml/SageAttention",
        ]
        assert by_type["custom_emoji"]["custom_emoji_id"] == "5368324170671202286"
        assert covered(by_type["custom_emoji"]) == "🔥" and by_type["custom_emoji"]["length"] == 2
        assert by_type["pre"]["language"] == "python" and covered(by_type["pre"]) == "q = quantize(k)"
        assert "bold" not in [e["type"] for e in rich.entities if covered(e) in ("🔥", "👍")]

        reply = posts[476]
        assert reply.reply_to == 475 and reply.forwarded_from == "CV Time"
        assert reply.text == "Ответ про arXiv:2501.00001" and reply.views == 987
        assert reply.author == "КПД" and reply.edited_at is None
        assert reply.date.replace(tzinfo=UTC) == datetime(2025, 4, 29, 5, 0, tzinfo=UTC)  # +03:00 → UTC
        assert posts[478].text == "" and posts[478].media == [{"media_type": "unsupported"}]
        assert not any("Please open Telegram" in p.text for p in posts.values())

        paper = s.scalar(select(Paper).where(Paper.arxiv_id == "2501.00001"))
        assert s.scalar(select(PostPaper).where(PostPaper.paper_id == paper.id)).post_id == reply.id


def test_reingest_unchanged_and_updated_views_text(store, tmp_path):
    path = _page(tmp_path)
    ingest_locations(store, [str(path)])
    again = ingest_locations(store, [str(path)])
    assert (again.summary.new, again.summary.updated, again.summary.unchanged) == (0, 0, 3)
    path.write_text(path.read_text(encoding="utf-8").replace("Ответ про", "Уточнение про"), encoding="utf-8")
    edited = ingest_locations(store, [str(path)])
    assert (edited.summary.new, edited.summary.updated) == (0, 1)


def test_detected_by_content(tmp_path):
    path = _page(tmp_path)
    renamed = tmp_path / "saved_page.htm"
    renamed.write_bytes(path.read_bytes())
    assert detect(RawSource(str(renamed), renamed.read_bytes())).name == "tme-preview"


def test_text_is_clean_so_offsets_survive():
    html = page(CH, "КПД", [post(CH, 9, "  <b>жирный </b><br/><br/><br/><br/>𝔘 <i>конец</i> ")])
    parsed = TmePreviewPage().parse(RawSource("x.html", html.encode()))
    record = parsed.posts[0]
    assert record.text == clean_text(record.text) == "жирный\n\n𝔘 конец"
    assert record.entities == [
        {"type": "bold", "offset": 0, "length": 6},
        {"type": "italic", "offset": 11, "length": 5},
    ]


def test_counts():
    assert [parse_count(x) for x in ("987", "1.2K", "15.3K", "1.1M", "2k", "", None)] == [
        987,
        1200,
        15300,
        1100000,
        2000,
        None,
        None,
    ]


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda d: d[: len(d) // 2], "truncated t.me page"),
        (lambda d: d.replace(b"data-post=", b"data-x="), "not a t.me/s page"),
    ],
)
def test_bad_pages_give_one_line(tmp_path, mutate, problem):
    data = mutate(_page(tmp_path).read_bytes())
    with pytest.raises(IngestError) as info:
        TmePreviewPage().parse(RawSource("saved.html", data))
    assert problem in str(info.value) and "saved.html" in str(info.value)


# --- property tests: random, truncated and mutated input only ever gives IngestError ----------------

FRAGMENTS = [
    f'<div class="tgme_widget_message js-widget_message" data-post="{CH}/5">',
    '<div class="tgme_widget_message service_message" data-post="x/1">',
    f'data-post="{CH}/abc"',
    '<div class="tgme_widget_message_text js-message_text">',
    "</div>",
    "<br/>",
    "<b>",
    "</b>",
    "<pre>",
    '<a href="?q=%23tag">',
    '<a href="https://t.me/x">@x</a>',
    "</a>",
    '<tg-emoji emoji-id="1">',
    '<i class="emoji"><b>👍</b></i>',
    '<span class="tgme_widget_message_views">',
    "1.2K",
    "9.9M",
    "</span>",
    '<time datetime="2025-04-28T20:54:00+00:00">',
    '<time datetime="garbage">',
    "</time>",
    '<span class="tgme_reaction">',
    '<span class="tgme_widget_message_edited">edited</span>',
    f'<a class="tgme_widget_message_reply" href="https://t.me/{CH}/4">',
    '<a class="tgme_widget_message_photo_wrap" style="background-image:url(\'x.jpg\')">',
    '<span class="tgme_widget_message_forwarded_from_name">',
    "🔥",
    "&amp;",
    "\u00a0",
    "\r\n",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_ingest_error(data):
    check_parser(TmePreviewPage(), data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_truncated_and_mutated_pages_only_raise_ingest_error(data):
    check_parser(TmePreviewPage(), data.draw(mutations(VALID_PAGE)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_soup(FRAGMENTS))
def test_random_markup_only_raises_ingest_error(body):
    check_parser(TmePreviewPage(), page(CH, "КПД", [body]).encode("utf-8", "surrogatepass"))
