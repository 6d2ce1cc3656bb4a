"""The five captured channel pages of the sample corpus: expected posts, no junk, merged copies."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ingest.pipeline import ingest_locations
from rag.store.models import Channel, Post, Source

# Derived by reading the files (see ingest/parsers/page_dump.py for the page shapes):
# 000: КПД channel page, 24 items shown: 17 dated blocks (one image-only, skipped), 2 deleted
#      markers, 4 undated posts found by their "[Статья]"-style header (one more undated post,
#      "Инструкции в мемах…", has no header and stays glued to the Qwerky post) -> 20 posts,
#      one of them post 475 (also captured with its id in 001).
# 001/002: single-post pages of posts 475 and 520, each shown twice (preview + full).
# 003: Concise Research page: 21 posts separated by reaction counters.
# 004: Awesome DL page: 14 posts, most shown twice inside their block.
EXPECTED_POSTS = {"000": 20, "001": 1, "002": 1, "003": 21, "004": 14}
JUNK = [
    "Please open Telegram to view this post",
    "VIEW IN TELEGRAM",
    "Share with your friend now",
    "Telegram News",
    "The Channel name and bio must be no more than 255 characters long",
    "Shown 1 - 24 of 49",
    "Мир сегодня с",
    "Труха",
    "Николаевский Ванёк",
    "avatar",
    "Deleted",
    "tgoop.com/quant_prune_distill",
    "Log in to unlock",
    "Download Telegram",
    "subscribers",
    "Create:",
    "Last Update:",
    "BY КПД",
    "pinned «",
]
DATE_GLUED = re.compile(r"\d{2}\.\d{2}\.\d{4}\d{2}:\d{2}")
REACTIONS = re.compile(r"^[^\w\s]{1,3}\d+(?:[^\w\s]{1,3}\d+)+$", re.M)


@pytest.fixture
def ingested(store, sample_corpus):
    report = ingest_locations(store, [str(sample_corpus)])
    assert report.ok, report.errors
    return store


def _posts_by_file(store) -> dict[str, list[Post]]:
    with store.session() as s:
        rows = s.execute(select(Post, Source.location).join(Source, Post.source_id == Source.id)).all()
        result: dict[str, list[Post]] = {}
        for post, location in rows:
            result.setdefault(location.rsplit("/", 1)[-1][:3], []).append(post)
        return result


def test_each_file_yields_the_posts_read_by_hand(ingested):
    by_file = _posts_by_file(ingested)
    # post 475 is first stored from 000 (no id) and then upgraded by 001: it counts for 001.
    counts = {name: len(posts) for name, posts in by_file.items()}
    assert counts == {"000": 19, "001": 1, "002": 1, "003": 21, "004": 14}
    assert sum(EXPECTED_POSTS.values()) - 1 == sum(counts.values())  # 475 stored once


def test_no_stored_post_contains_page_junk(ingested):
    with ingested.session() as s:
        texts = list(s.scalars(select(Post.text)))
    for text in texts:
        for junk in JUNK:
            assert junk not in text, (junk, text[:80])
        assert not DATE_GLUED.search(text), text[:80]
        assert not REACTIONS.search(text), text[:80]


def test_single_post_pages_get_permalinks_and_475_is_stored_once(ingested):
    with ingested.session() as s:
        permalinks = set(s.scalars(select(Post.permalink).where(Post.permalink.is_not(None))))
        assert permalinks == {"https://t.me/quant_prune_distill/475", "https://t.me/quant_prune_distill/520"}
        ard = s.scalars(select(Post).where(Post.text.contains("Знание всей прошлой траектории"))).all()
        assert len(ard) == 1 and ard[0].message_id == 475
        # the channel page (000) and the single-post pages are one channel, named by username
        channel = s.scalar(select(Channel).where(Channel.username == "quant_prune_distill"))
        assert channel.title == "КПД"
        assert s.scalar(select(Post.reactions).where(Post.message_id == 520)) == {"🔥": 42}


def test_dates_precede_their_posts_on_channel_pages(ingested):
    with ingested.session() as s:
        singapore = s.scalar(select(Post).where(Post.text.contains("ротанга и дуриана")))
        llama_demo = s.scalar(select(Post).where(Post.text.startswith("Демку c 🦙-4")))
    assert (singapore.date.year, singapore.date.month, singapore.date.day, singapore.date.hour) == (
        2025,
        4,
        28,
        23,
    )
    assert (llama_demo.date.month, llama_demo.date.day) == (4, 6)


def test_preview_and_full_copies_inside_a_block_are_merged(ingested):
    with ingested.session() as s:
        sage = s.scalars(select(Post).where(Post.text.contains("SageAttention — brand new attention"))).all()
        forwarded = s.scalar(
            select(Post).where(Post.text.startswith("Как LLaMA 3.1 работает с изображениями"))
        )
    assert len(sage) == 1
    assert sage[0].text.count("Как применить у себя") == 1
    # the code snippet is only in the second copy on the page: the merge keeps lines of both
    assert sage[0].text.rstrip().endswith("F.scaled_dot_product_attention = sageattn")
    assert forwarded.forwarded_from == "CV Time"
    assert forwarded.text.count("Сегодня расскажем, как LLaMA 3.1") == 1


def test_reingest_of_unchanged_corpus_changes_nothing(ingested, sample_corpus):
    report = ingest_locations(ingested, [str(sample_corpus)])
    assert (report.summary.new, report.summary.updated) == (0, 0)
    assert report.summary.unchanged == 56
    forced = ingest_locations(ingested, [str(sample_corpus)], force=True)
    assert (forced.summary.new, forced.summary.updated) == (0, 0)


def test_single_post_page_alone_stores_its_body_once(store, sample_corpus):
    # The page shows post 475 twice (preview above the permalink line, full text below); ingested
    # without the channel page that also holds it, the two copies must still become one text.
    report = ingest_locations(store, [str(sample_corpus / "001_d7c62806a8065b1d.txt")])
    assert report.ok and report.summary.new == 1
    with store.session() as s:
        text = s.scalar(select(Post.text).where(Post.message_id == 475))
    assert text.count("Знание всей прошлой траектории") == 1
    assert text.count("Предложенный подход ARD") == 1
    assert text.startswith("Метод\n\n") and text.endswith("по метрикам.")
    assert 3_000 < len(text) < 4_000  # 7,210 characters when stored twice


def test_first_ingest_into_an_empty_store_reports_nothing_updated(store, sample_corpus):
    # 000 holds post 475 without its id, 001 the same post with it: a merge, not an update.
    report = ingest_locations(store, [str(sample_corpus)])
    assert report.ok
    assert (report.summary.new, report.summary.updated, report.summary.merged) == (56, 0, 1)
    assert report.summary.line().startswith("new 56, updated 0, unchanged 0, merged 1")
