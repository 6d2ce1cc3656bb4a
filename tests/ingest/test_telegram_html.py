"""Telegram Desktop HTML export: every field, entities in UTF-16 offsets, joined and forwarded
messages, replies across files, service messages skipped, permalinks after ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.errors import IngestError
from ingest.clean import clean_text, clean_with_entities
from ingest.parsers.telegram_html import TelegramHtmlExport, parse_export_date
from ingest.pipeline import ingest_locations
from ingest.registry import RawSource, detect
from rag.store.models import Channel, Paper, Post, PostPaper
from tests.ingest.fuzz import check_parser, html_soup, mutations
from tests.ingest.html_exports import (
    HEAD,
    TAIL,
    file_card,
    message,
    photo,
    reactions,
    service,
    write_html_export,
)

# lxml elements are falsy when childless: `el or other` is a bug, so the warning fails the test.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

MSK = timezone(timedelta(hours=3))
RICH = (
    '🔥 Статья <a href="https://arxiv.org/abs/2410.02367">SageAttention</a> от '
    '<a href="https://t.me/thu_ml">@thu_ml</a>: <strong>2x</strong> быстрее<br>'
    "<em>курсив</em> и <code>int8</code> "
    '<a href="" onclick="return ShowHashtag(&quot;quant&quot;)">#quant</a><br>'
    "<pre>q = quantize(k)</pre><br>"
    '<a href="https://github.com/thu-ml/SageAttention">https://github.com/thu-ml/SageAttention</a> '
    '<span class="spoiler hidden" onclick="ShowSpoiler(this)"><span aria-hidden="true">секрет</span></span>'
)
RICH_TEXT = (
    "🔥 Статья SageAttention от @thu_ml: 2x быстрее\nкурсив и int8 #quant\nq = quantize(k)\n"
    "https://github.com/thu-ml/SageAttention секрет"
)


def _export(tmp_path):
    first = "".join(
        [
            service(-1, "28 April 2025"),
            service(1, "Channel &laquo;КПД&raquo; created"),
            message(
                2,
                date="28.04.2025 23:54:00 UTC+03:00",
                time="23:54",
                from_name="КПД",
                text=RICH,
                signature="Denis",
                reactions=reactions(("👍", 7, 0), ("🔥", 2, 0), ("❤", None, 2)),
            ),
            message(
                3,
                date="28.04.2025 23:58:10 UTC+03:00",
                time="23:58",
                joined=True,
                reply_to=2,
                media=photo("photos/photo_1@28-04-2025_23-58-10.jpg"),
                text="Фото &amp; подпись",
            ),
            message(
                4,
                date="29.04.2025 09:00:00 UTC+03:00",
                time="09:00",
                from_name="КПД",
                forwarded="CV Time",
                forwarded_date="27.04.2025 12:00:00 UTC+03:00",
                text="Переслано: см. arXiv:2501.00001",
                media=file_card("files/paper.pdf", "paper.pdf", "1.2 MB"),
            ),
            message(
                5,
                date="29.04.2025 09:00:01 UTC+03:00",
                time="09:00",
                joined=True,
                forwarded="",
                text="Вторая часть пересылки",
            ),
        ]
    )
    second = message(
        7,
        date="30.04.2025 10:00:00 UTC+03:00",
        time="10:00",
        from_name="КПД",
        reply_to=2,
        reply_file="messages.html",
        text="Ответ из второго файла",
    )
    folder = tmp_path / "ChatExport_2025-05-01"
    folder.mkdir()
    write_html_export(folder / "messages.html", "КПД", first)
    write_html_export(folder / "messages2.html", "КПД", second)
    return folder


def test_every_field_is_stored_with_permalinks(store, tmp_path):
    folder = _export(tmp_path)
    report = ingest_locations(store, [str(folder)], channel_hint="quant_prune_distill")
    assert report.ok, report.errors
    assert report.summary.new == 5 and report.summary.dropped == 1  # the "created" service message
    with store.session() as s:
        posts = {p.message_id: p for p in s.scalars(select(Post))}
        channel = s.scalar(select(Channel))
        assert (channel.username, channel.title) == ("quant_prune_distill", "КПД")
        assert sorted(posts) == [2, 3, 4, 5, 7]
        rich = posts[2]
        assert rich.text == RICH_TEXT
        assert rich.permalink == "https://t.me/quant_prune_distill/2"
        # 23:54 at UTC+03:00 is stored as the same instant in UTC.
        assert rich.date.replace(tzinfo=UTC) == datetime(2025, 4, 28, 23, 54, tzinfo=MSK)
        assert rich.author == "Denis"
        assert rich.reactions == {"👍": 7, "🔥": 2, "❤": 2}
        assert rich.links == ["https://arxiv.org/abs/2410.02367", "https://github.com/thu-ml/SageAttention"]
        by_type = {e["type"]: e for e in rich.entities}
        units = rich.text.encode("utf-16-le")

        def covered(entity):
            return units[2 * entity["offset"] : 2 * (entity["offset"] + entity["length"])].decode("utf-16-le")

        # 🔥 is two UTF-16 units: every offset after it is shifted by one against str indices.
        assert by_type["text_link"] == {
            "type": "text_link",
            "offset": 10,
            "length": 13,
            "url": "https://arxiv.org/abs/2410.02367",
        }
        assert covered(by_type["text_link"]) == "SageAttention"
        assert covered(by_type["mention"]) == "@thu_ml"
        assert covered(by_type["bold"]) == "2x"
        assert covered(by_type["italic"]) == "курсив"
        assert covered(by_type["code"]) == "int8"
        assert covered(by_type["hashtag"]) == "#quant"
        assert covered(by_type["pre"]) == "q = quantize(k)"
        assert covered(by_type["url"]) == "https://github.com/thu-ml/SageAttention"
        assert covered(by_type["spoiler"]) == "секрет"

        joined = posts[3]
        assert joined.author == "КПД"  # joined follow-up: the sender of the message before it
        assert joined.reply_to == 2 and joined.text == "Фото & подпись"
        assert joined.media == [{"media_type": "photo", "file": "photos/photo_1@28-04-2025_23-58-10.jpg"}]
        assert joined.date.replace(tzinfo=UTC) == datetime(2025, 4, 28, 20, 58, 10, tzinfo=UTC)

        fwd = posts[4]
        assert fwd.forwarded_from == "CV Time" and fwd.author == "КПД"
        assert fwd.media == [
            {"media_type": "file", "title": "paper.pdf", "status": "1.2 MB", "file": "files/paper.pdf"}
        ]
        assert posts[5].forwarded_from == "CV Time"  # follow-up forward without its own header
        assert posts[7].reply_to == 2 and posts[7].permalink == "https://t.me/quant_prune_distill/7"
        assert posts[2].views is None and posts[2].edited_at is None  # the HTML export has neither

        paper = s.scalar(select(Paper).where(Paper.arxiv_id == "2501.00001"))
        assert paper is not None
        assert s.scalar(select(PostPaper).where(PostPaper.paper_id == paper.id)).post_id == fwd.id


def test_reingest_changes_nothing_and_edit_updates(store, tmp_path):
    folder = _export(tmp_path)
    ingest_locations(store, [str(folder)], channel_hint="kpd")
    again = ingest_locations(store, [str(folder)], channel_hint="kpd")
    assert (again.summary.new, again.summary.updated, again.summary.unchanged) == (0, 0, 5)
    page = folder / "messages2.html"
    page.write_text(
        page.read_text(encoding="utf-8").replace("второго файла", "второго файла (исправлено)"),
        encoding="utf-8",
    )
    edited = ingest_locations(store, [str(folder)], channel_hint="kpd")
    assert (edited.summary.new, edited.summary.updated) == (0, 1)


def test_without_channel_posts_keep_the_title_and_no_permalink(store, tmp_path):
    folder = _export(tmp_path)
    assert ingest_locations(store, [str(folder / "messages.html")]).ok
    with store.session() as s:
        assert s.scalar(select(Channel)).title == "КПД"
        assert all(p.permalink is None for p in s.scalars(select(Post)))


def test_detected_by_content_not_name(tmp_path):
    path = write_html_export(
        tmp_path / "export.bin",
        "X",
        message(1, date="01.01.2025 10:00:00 UTC+00:00", time="10:00", from_name="X", text="hi"),
    )
    assert detect(RawSource(str(path), path.read_bytes())).name == "telegram-html"


def test_text_is_already_clean_so_offsets_survive_finish_batch(tmp_path):
    html = message(
        9,
        date="01.01.2025 10:00:00 UTC+00:00",
        time="10:00",
        from_name="X",
        text="  <strong>жирный  </strong><br><br><br><br>𝔘 <em>конец</em>  ",
    )
    path = write_html_export(tmp_path / "m.html", "X", html)
    post = TelegramHtmlExport().parse(RawSource(str(path), path.read_bytes())).posts[0]
    assert post.text == clean_text(post.text) == "жирный\n\n𝔘 конец"
    assert post.entities == [
        {"type": "bold", "offset": 0, "length": 6},
        {"type": "italic", "offset": 11, "length": 5},
    ]


def test_dates_with_and_without_zone():
    assert parse_export_date("28.04.2025 23:54:00 UTC+03:00") == datetime(2025, 4, 28, 23, 54, tzinfo=MSK)
    assert parse_export_date("01.02.2020 03:04:05 UTC-05:30").utcoffset() == -timedelta(hours=5, minutes=30)
    assert parse_export_date("01.02.2020 03:04:05") == datetime(2020, 2, 1, 3, 4, 5, tzinfo=UTC)
    assert parse_export_date("31.02.2020 03:04:05") is None


@pytest.mark.parametrize("cut, problem", [(0.6, "truncated HTML export"), (None, "no message history")])
def test_bad_pages_give_one_line(tmp_path, cut, problem):
    path = write_html_export(
        tmp_path / "messages.html",
        "X",
        message(1, date="01.01.2025 10:00:00 UTC+00:00", time="10:00", from_name="X", text="hi"),
    )
    data = path.read_bytes()
    data = data[: int(len(data) * cut)] if cut else data.replace(b'class="history"', b'class="other"')
    with pytest.raises(IngestError) as info:
        TelegramHtmlExport().parse(RawSource(str(path), data))
    assert problem in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


# --- property tests: random, truncated and mutated input only ever gives IngestError ----------------

_VALID = None


def _valid_export() -> bytes:
    global _VALID
    if _VALID is None:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            _VALID = (_export(Path(tmp)) / "messages.html").read_bytes()
    return _VALID


FRAGMENTS = [
    '<div class="message default clearfix" id="message5">',
    '<div class="message default clearfix joined" id="message6">',
    '<div class="message service" id="message7">',
    '<div class="body">',
    '<div class="forwarded body">',
    '<div class="from_name">',
    '<div class="text">',
    '<div class="reply_to details">',
    '<a href="#go_to_message3" onclick="return GoToMessage(3)">',
    '<div class="pull_right date details" title="',
    "28.04.2025 23:54:00 UTC+03:00",
    '">',
    "</div>",
    "</a>",
    "<br>",
    "<strong>",
    "</strong>",
    "<pre>",
    "</pre>",
    '<a href="https://arxiv.org/abs/2401.00001">',
    '<a href="" onclick="return ShowHashtag(&quot;x&quot;)">',
    '<span class="reactions"><span class="reaction"><span class="emoji">👍</span><span class="count">x7',
    '<div class="media_wrap clearfix"><a class="photo_wrap clearfix pull_left" href="p.jpg">',
    '<div class="signature details">',
    "🔥",
    "&amp;",
    "\n   ",
    "\u00a0",
    "\r",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_ingest_error(data):
    check_parser(TelegramHtmlExport(), data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_truncated_and_mutated_exports_only_raise_ingest_error(data):
    check_parser(TelegramHtmlExport(), data.draw(mutations(_valid_export())))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_soup(FRAGMENTS))
def test_random_markup_in_a_history_only_raises_ingest_error(body):
    page = HEAD.format(title="X") + body + TAIL
    check_parser(TelegramHtmlExport(), page.encode("utf-8", "surrogatepass"))


def _is_subsequence(small: str, big: str) -> bool:
    chars = iter(big)
    return all(ch in chars for ch in small)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_clean_with_entities_matches_clean_text_and_moves_offsets(data):
    text = data.draw(st.text(alphabet=st.sampled_from(list("ab 𝔘\n\r\t\u00a0\u2028ё")), max_size=40))
    boundaries = [0]
    for ch in text:
        boundaries.append(boundaries[-1] + (2 if ord(ch) > 0xFFFF else 1))
    spans = data.draw(
        st.lists(st.tuples(st.sampled_from(boundaries), st.sampled_from(boundaries)), max_size=5)
    )
    entities = [{"type": "bold", "offset": min(a, b), "length": abs(a - b)} for a, b in spans if a != b]
    cleaned, moved = clean_with_entities(text, entities)
    assert cleaned == clean_text(text)
    units = cleaned.encode("utf-16-le")
    original = text.encode("utf-16-le")
    for entity in moved:
        assert entity["length"] > 0 and entity["offset"] + entity["length"] <= len(units) // 2
    # Each entity, moved alone, covers a cleaned subsequence of what it covered before.
    for before in entities:
        for after in clean_with_entities(text, [before])[1]:
            old = original[2 * before["offset"] : 2 * (before["offset"] + before["length"])].decode(
                "utf-16-le"
            )
            new = units[2 * after["offset"] : 2 * (after["offset"] + after["length"])].decode("utf-16-le")
            assert new and _is_subsequence(new, old.replace("\u00a0", " ").replace("\r", "\n"))


# --- real-world shapes (issue 17) ----------------------------------------------------------------------


def _one(tmp_path, store, body: str, *, title: str = "КПД", **kwargs):
    path = write_html_export(tmp_path / "messages.html", title, body)
    report = ingest_locations(store, [str(path)], channel_hint="kpd", **kwargs)
    assert report.ok, report.errors
    with store.session() as s:
        return report, {p.message_id: p for p in s.scalars(select(Post))}


def test_link_written_without_a_scheme_keeps_its_url(store, tmp_path):
    text = (
        'Подписывайтесь: <a href="t.me/quant_prune_distill">t.me/quant_prune_distill</a> '
        '<a href = "stickers/sticker (3).webp">🔥</a> и <a href="arxiv.org/abs/2410.02367">статья</a>'
    )
    _report, posts = _one(
        tmp_path,
        store,
        message(1, date="01.05.2025 10:00:00 UTC+03:00", time="10:00", from_name="КПД", text=text),
    )
    post = posts[1]
    assert post.links == ["t.me/quant_prune_distill", "arxiv.org/abs/2410.02367"]
    units = post.text.encode("utf-16-le")
    kinds = [
        (e["type"], units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le"))
        for e in post.entities
    ]
    assert kinds == [("url", "t.me/quant_prune_distill"), ("custom_emoji", "🔥"), ("text_link", "статья")]
    assert post.entities[2]["url"] == "arxiv.org/abs/2410.02367"


def test_via_bot_is_not_part_of_the_author(store, tmp_path):
    body = message(
        1, date="01.05.2025 10:00:00 UTC+03:00", time="10:00", from_name="Denis via @gif", text="гифка"
    ) + message(
        2,
        date="01.05.2025 10:01:00 UTC+03:00",
        time="10:01",
        from_name="КПД",
        forwarded="CV Time via @vote",
        forwarded_date="30.04.2025 12:00:00 UTC+03:00",
        text="опрос",
    )
    _report, posts = _one(tmp_path, store, body)
    assert posts[1].author == "Denis"
    assert posts[2].forwarded_from == "CV Time"


def test_reply_to_a_message_in_another_chat_is_not_an_in_channel_reply(store, tmp_path):
    other = message(3, date="01.05.2025 10:02:00 UTC+03:00", time="10:02", from_name="КПД", text="ответ туда")
    other = other.replace(
        '\n       <div class="text">',
        '\n       <div class="reply_to details">\nIn reply to a message in another chat\n       </div>\n'
        '\n       <div class="text">',
    )
    body = (
        message(1, date="01.05.2025 10:00:00 UTC+03:00", time="10:00", from_name="КПД", text="пост")
        + message(
            2,
            date="01.05.2025 10:01:00 UTC+03:00",
            time="10:01",
            from_name="КПД",
            reply_to=1,
            text="ответ здесь",
        )
        + other
    )
    _report, posts = _one(tmp_path, store, body)
    assert (posts[2].reply_to, posts[2].reply_to_other) == (1, None)
    assert (posts[3].reply_to, posts[3].reply_to_other) == (None, {"chat": None, "message_id": None})


def test_files_of_one_export_are_one_channel_even_when_their_titles_differ(store, tmp_path):
    folder = tmp_path / "ChatExport_2025-05-01"
    folder.mkdir()
    write_html_export(
        folder / "messages.html",
        "КПД",
        message(1, date="01.05.2025 10:00:00 UTC+03:00", time="10:00", from_name="КПД", text="раз"),
    )
    write_html_export(
        folder / "messages2.html",
        "КПД (старое название)",
        message(2, date="02.05.2025 10:00:00 UTC+03:00", time="10:00", from_name="КПД", text="два"),
    )
    assert ingest_locations(store, [str(folder)]).ok
    with store.session() as s:
        assert [c.title for c in s.scalars(select(Channel))] == ["КПД"]
        assert len(s.scalars(select(Post)).all()) == 2


def test_old_html_dates_without_zone_say_so_and_tz_names_the_zone(store, tmp_path):
    from ingest.options import ReadOptions

    body = message(1, date="01.05.2019 12:00:00", time="12:00", from_name="КПД", text="старый пост")
    report, posts = _one(tmp_path, store, body)
    assert len(report.notes) == 1 and "no time zone" in report.notes[0]
    assert posts[1].date.replace(tzinfo=UTC) == datetime(2019, 5, 1, 12, 0, tzinfo=UTC)
    report, posts = _one(tmp_path, store, body, options=ReadOptions(tz="+03:00"))
    assert not report.notes and report.summary.updated == 1
    assert posts[1].date.replace(tzinfo=UTC) == datetime(2019, 5, 1, 9, 0, tzinfo=UTC)


def test_full_account_html_export_folder_ingests_its_chats_and_passes_over_its_index_pages(store, tmp_path):
    root = tmp_path / "DataExport_2025-05-01"
    (root / "lists").mkdir(parents=True)
    index = '<div class="page_wrap"><div class="page_body list_page"><a class="block_link" href="lists/chats.html">'
    (root / "export_results.html").write_text(
        f"<html><body>{index}</div></div></body></html>", encoding="utf-8"
    )
    (root / "lists" / "chats.html").write_text(
        f"<html><body>{index}</div></div></body></html>", encoding="utf-8"
    )
    for number, title in ((1, "КПД"), (2, "Сиолошная")):
        chat = root / "chats" / f"chat_00{number}"
        chat.mkdir(parents=True)
        body = message(
            5, date="01.05.2025 10:00:00 UTC+03:00", time="10:00", from_name=title, text=f"пост {title}"
        )
        write_html_export(chat / "messages.html", title, body)
    report = ingest_locations(store, [str(root)])
    assert report.ok, report.errors
    assert report.summary.new == 2
    with store.session() as s:
        assert sorted(c.title for c in s.scalars(select(Channel))) == ["КПД", "Сиолошная"]


def test_account_html_export_chats_with_the_same_name_stay_apart(store, tmp_path):
    """Two contacts called Иван are two chat folders with one page title: before, the second
    chat's message 1 replaced the first's (counted as a merged copy)."""
    root = tmp_path / "DataExport_2025-05-01"
    for number, text in ((1, "пишет первый Иван"), (2, "пишет второй Иван"), (3, "пишет Мария")):
        chat = root / "chats" / f"chat_00{number}"
        chat.mkdir(parents=True)
        name = "Мария" if number == 3 else "Иван"
        body = message(1, date="01.05.2025 10:00:00 UTC+03:00", time="10:00", from_name=name, text=text)
        write_html_export(chat / "messages.html", name, body)
    report = ingest_locations(store, [str(root)])
    assert report.ok and report.summary.new == 3 and report.summary.merged == 0
    with store.session() as s:
        rows = s.execute(select(Channel.title, Post.text).join(Post.channel)).all()
    assert sorted(text for _, text in rows) == ["пишет Мария", "пишет второй Иван", "пишет первый Иван"]
    assert len({title for title, _ in rows}) == 3 and ("Мария", "пишет Мария") in rows
    # one chat on its own lands in the same channel as in the whole export
    again = ingest_locations(store, [str(root / "chats" / "chat_002" / "messages.html")], force=True)
    assert again.ok and again.summary.new == 0 and again.summary.unchanged == 1
