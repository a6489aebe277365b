"""Property-based tests (hypothesis): the chunker, the Telegram renderer and the URL canonicaliser."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import render
from index.articles import Article, canonical_url
from index.embedding.embedder import Embedder
from index.ingest.chunking import Chunker, split_sentences
from index.search.hybrid import Hit
from tests.support.botapi import parse_html, utf16_len

# Text with sentence punctuation, markup characters, emoji, right-to-left and zero-width characters.
ALPHABET = st.sampled_from(list("abcdefghij ABCXYZ .,!?;:\n\n<>&\"'") + ["🙂", "ש", "\u200b", "é", "中"])
TEXTS = st.text(ALPHABET, max_size=1500)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(ALPHABET, max_size=60), text=TEXTS, max_tokens=st.integers(16, 256),
       overlap=st.integers(0, 64))
def test_chunker_spans_are_exact_bounded_and_cover_every_sentence(embedder: Embedder, title: str, text: str,
                                                                  max_tokens: int, overlap: int) -> None:
    chunker = Chunker(embedder.count_tokens, max_tokens, overlap, embedder.max_seq_length)
    passages = chunker.chunk(title, text)
    for passage in passages:
        assert 0 <= passage.start < passage.end <= len(text)
        assert passage.text == text[passage.start:passage.end]
        words = passage.text.split()
        if len(words) > 1:  # only a single over-long word may exceed the budget
            assert embedder.count_tokens([passage.text])[0] <= chunker.max_tokens
    assert all(b.start > a.start for a, b in zip(passages, passages[1:]))
    for span in split_sentences(text):
        assert any(p.start <= span.start and span.end <= p.end for p in passages) or \
            any(p.start <= span.start < p.end for p in passages)


def _hit(text: str, title: str, best: tuple[int, int] | None) -> Hit:
    article = Article(id=1, title=title, text=text, url="https://x.test/a?b=<c>&d", published=date(2024, 1, 1),
                      source=title[:20] or None, author=None, added_by="t", added_at=datetime.now(timezone.utc))
    return Hit(passage_id=1, article=article, text=text, start=0, end=len(text), score=1.0, dense_score=0.5,
               dense_rank=1, lexical_rank=None, best_sentence=best)


@settings(max_examples=80, deadline=None)
@given(texts=st.lists(st.text(ALPHABET, min_size=1, max_size=3000), min_size=1, max_size=9),
       title=st.text(ALPHABET, max_size=300), data=st.data())
def test_rendered_answers_are_valid_telegram_html_within_the_limit(texts: list[str], title: str, data) -> None:
    hits = []
    for text in texts:
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, len(text)))
        hits.append(_hit(text, title, (start, end) if end > start else None))
    for html in render.answer_messages(hits):
        assert len(html) <= render.MAX_MESSAGE_CHARS
        visible, _ = parse_html(html)  # raises on anything Telegram would refuse
        assert utf16_len(visible) <= render.MAX_MESSAGE_CHARS


HOSTS = st.sampled_from(["example.org", "WWW.Example.org", "news.test", "www.news.test:8080", "[::1]"])
PATHS = st.lists(st.text(st.sampled_from("abc-_%2F"), min_size=1, max_size=6), max_size=3).map("/".join)
PARAMS = st.lists(st.tuples(st.sampled_from(["utm_source", "id", "page", "fbclid", "q"]),
                            st.text(st.sampled_from("abc123"), max_size=4)), max_size=4)


@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(["http", "https"]), host=HOSTS, path=PATHS, params=PARAMS,
       fragment=st.text(st.sampled_from("xyz"), max_size=3), slash=st.booleans())
def test_canonical_urls(scheme: str, host: str, path: str, params: list, fragment: str, slash: bool) -> None:
    query = "&".join(f"{k}={v}" for k, v in params)
    url = f"{scheme}://{host}/{path}{'/' if slash else ''}" + (f"?{query}" if query else "") + \
        (f"#{fragment}" if fragment else "")
    canonical = canonical_url(url)
    assert canonical_url(canonical) == canonical  # idempotent
    assert "#" not in canonical and "utm_source" not in canonical and "fbclid" not in canonical
    assert canonical.startswith("https://") and "www." not in canonical.lower()
    # variants of the same address agree
    assert canonical_url(url.replace("http://", "https://")) == canonical
    assert canonical_url(url.upper().replace("HTTP", "http", 1)).split("/")[2] == canonical.split("/")[2]
