"""Cross-post test helpers: the sample corpus in a store, the shared scripted OpenAI endpoint,
and the checks every conversion must pass (limits by each network's own counter, nothing broken,
parts concatenate back to the rendered post)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import grapheme
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from twitter_text import parse_tweet

from crosspost.counters import mastodon_length, utf16_length
from crosspost.model import SourcePost
from crosspost.parse import doc_from_source
from crosspost.tokens import find_tokens
from rag.samples import SAMPLE_CORPUS
from tests.fakes.openai_endpoint import FakeOpenAI

INDEPENDENT_COUNTERS: dict[str, Callable[[str], int]] = {
    # X and Bluesky are measured with the libraries directly, not through crosspost's wrappers.
    "x": lambda text: parse_tweet(text).weightedLength,
    "bluesky": grapheme.length,
    "mastodon": mastodon_length,
    "threads": utf16_length,
    "linkedin": utf16_length,
}


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory):
    from ingest.pipeline import ingest_locations
    from rag.store import open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('xp') / 'corpus.sqlite3'}")
    report = ingest_locations(store, [str(SAMPLE_CORPUS)])
    assert report.ok, report.errors
    yield store
    store.close()


def find_post(store, prefix: str) -> SourcePost:
    from rag.store.conversions import iter_post_views

    for view in iter_post_views(store):
        if view.text.startswith(prefix):
            return SourcePost(
                text=view.text,
                entities=view.entities,
                permalink=view.permalink,
                channel=view.channel,
                message_id=view.message_id,
                origin=f"post {view.id}",
                post_id=view.id,
            )
    raise AssertionError(f"no stored post starts with {prefix!r}")


def check_parts(name: str, target, rules, post: SourcePost, parts) -> None:
    """Every part fits, numbering is right, bodies concatenate back to the rendered post, and no
    protected token (URL, mention, hashtag, code span, number with unit) is cut."""
    if name == "markdown":
        assert len(parts) == 1
        for url in doc_from_source(post).link_urls():
            assert url in parts[0].text or url.replace(")", "%29") in parts[0].text
        return
    count = INDEPENDENT_COUNTERS[name]
    n = len(parts)
    for number, part in enumerate(parts, 1):
        assert count(part.text) == part.length, (name, part.text)
        if name == "x":
            assert parse_tweet(part.text).valid, part.text
        assert part.length <= rules.limit, (name, number, part.length)
        if name == "bluesky":  # the post record's second limit: 3,000 UTF-8 bytes
            assert len(part.text.encode("utf-8")) <= 3000, (number, len(part.text.encode("utf-8")))
        expected_suffix = f"\n{number}/{n}" if n > 1 else ""
        assert part.text.endswith(expected_suffix)
        # a part cut inside a code block reopens its fence before the body and closes it after
        lead = re.match(r"^`{3,4}[^\n`]*\n", part.text)
        head = part.text[lead.end() :] if lead and not part.body.startswith("```") else part.text
        assert head.startswith(part.body), (name, number, part.text[:80], part.body[:80])
        rest = head[len(part.body) :]
        if number > 1:
            assert rest in (expected_suffix, "\n```" + expected_suffix, "\n````" + expected_suffix), rest
        if number < n:  # no part shorter than the network's minimum unless it is the last
            assert count(part.body) >= rules.min_part, (name, number, part.body)
    rendered = target.render(doc_from_source(post))
    text = rendered.text
    pos, ranges = 0, []
    for part in parts:
        at = text.find(part.body, pos)  # only whitespace between parts (code keeps its indentation)
        assert at >= 0 and not text[pos:at].strip(), (name, part.body[:40], text[pos : pos + 40])
        pos = at
        ranges.append((pos, pos + len(part.body)))
        pos += len(part.body)
    assert not text[pos:].strip(), "text left over after the last part"
    protected = list(rendered.protected) + [t.span for t in find_tokens(text, units=True)]
    for start, end in protected:
        if not text[start:end].strip():
            continue
        assert any(a <= start and end <= b for a, b in ranges), (name, "cut token", text[start:end])


class FakeLLM(FakeOpenAI):
    """The shared scripted endpoint, with the crosspost client's config pointing at it."""

    @property
    def config(self):
        from crosspost.llm import LLMConfig

        return LLMConfig(base_url=self.base_url, model="fake", timeout_s=10)


def fake_translate(user: str, _call: int) -> str:
    """'Translates' by replacing every Cyrillic word; tags and placeholders are kept as a good model would."""
    return re.sub(r"[А-Яа-яЁё]+", "word", user)


@pytest.fixture
def fake_llm():
    servers = []

    def start(script=fake_translate) -> FakeLLM:
        server = FakeLLM(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
