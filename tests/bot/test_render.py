"""Rendering: escaped article text, bold answer sentence, never over Telegram's limit, strict HTML."""

from __future__ import annotations

from datetime import date, datetime, timezone

from bot import render
from index.articles import Article
from index.search.hybrid import Answer, Hit
from tests.support.botapi.server import parse_html, utf16_len

NASTY = 'AT&T <script>alert("x")</script> &amp; <b>not bold</b> 3 < 4 > 2 "quoted" \'single\' 🙂 '


def _article(title: str = NASTY, url: str | None = "https://example.org/a?x=1&y=<2>") -> Article:
    return Article(id=7, title=title, text="", url=url, published=date(2024, 1, 2), source="Wire & Co <ltd>",
                   author=None, added_by="t", added_at=datetime.now(timezone.utc))


def _hit(text: str, best: tuple[int, int] | None = None, article: Article | None = None) -> Hit:
    return Hit(passage_id=1, article=article or _article(), text=text, start=0, end=len(text), score=1.0,
               dense_score=0.5, dense_rank=1, lexical_rank=1, best_sentence=best)


def _visible(html: str) -> str:
    text, _ = parse_html(html)  # raises on anything Telegram would reject
    return text


def test_every_piece_of_article_text_is_escaped_and_the_sentence_is_bold() -> None:
    text = NASTY * 3
    html = render.passage_html(_hit(text, (0, len(NASTY))), 1)
    visible = _visible(html)
    assert NASTY.strip() in visible and "Wire & Co <ltd>" in visible
    assert f"<b>{render.escape(NASTY)}</b>" in html
    assert 'href="https://example.org/a?x=1&amp;y=&lt;2&gt;"' in html


def test_messages_split_between_passages_and_never_exceed_the_limit() -> None:
    hits = [_hit(("Sentence & more <text>. " * 60) + str(i), (0, 24)) for i in range(9)]
    messages = render.answer_messages(hits)
    assert len(messages) > 1
    for html in messages:
        assert utf16_len(_visible(html)) <= render.MAX_MESSAGE_CHARS
        assert len(html) <= render.MAX_MESSAGE_CHARS
    joined = "".join(messages)
    assert all(f"<b>{i}.</b>" in joined for i in range(1, 10))


def test_a_single_huge_passage_is_cut_without_breaking_entities() -> None:
    text = "&<>" * 5000
    for best in [(0, len(text)), None]:
        html = render.passage_html(_hit(text, best), 1)
        assert len(html) <= render.MAX_MESSAGE_CHARS
        _visible(html)


def test_sources_and_list_stay_within_the_limit() -> None:
    articles = [_article(title=f"{NASTY} {i}" * 3) for i in range(200)]
    for html in [render.sources_html(articles), render.article_list_html(articles, 0, 500)]:
        assert len(html) <= render.MAX_MESSAGE_CHARS
        assert "more" in _visible(html)


def test_not_found_names_the_closest_article() -> None:
    html = render.not_found_html(_article(url=None))
    assert "could not find" in html and NASTY.strip() in _visible(html)
    assert render.not_found_html(None) == "I could not find that in my articles."


def test_a_huge_stored_title_never_makes_a_huge_header() -> None:
    """Rows stored before metadata was limited may hold very long titles, sources and links."""
    huge = _article(title="Very long & <odd> title " * 21_000, url="https://example.org/" + "a" * 100_000)
    huge = Article(**{**huge.__dict__, "source": "&<>" * 50_000})
    assert len(huge.title) > 500_000
    header = render.article_line(huge)
    assert len(header) <= render.HEADER_SHARE and "…" in _visible(header)
    html = render.passage_html(_hit("The answer is here. " * 10, (0, 19), article=huge), 1)
    assert len(html) <= render.MAX_MESSAGE_CHARS and "The answer is here." in _visible(html)
    messages = render.answer_messages([_hit("Short passage.", None, article=huge) for _ in range(5)])
    assert all(len(message) <= render.MAX_MESSAGE_CHARS for message in messages)
    assert len(messages) == 1  # five short passages fit in one message when headers stay small
    for html in [render.sources_html([huge] * 3), render.article_list_html([huge] * 3, 0, 3),
                 render.not_found_html(huge)]:
        assert len(html) <= render.MAX_MESSAGE_CHARS and html.count("…") >= 1
        _visible(html)


def test_only_web_links_are_rendered_as_links() -> None:
    for url in ["javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,<b>x</b>",
                "file:///etc/passwd", "tg://resolve?domain=x", "vbscript:msgbox"]:
        html = render.article_line(_article(title="Title", url=url))
        assert "href" not in html and "<b>Title</b>" in html, url
    assert 'href="https://example.org/x"' in render.article_line(_article(title="T", url="HTTPS://example.org/x"))


def test_credentials_in_stored_links_and_sources_are_never_shown() -> None:
    article = _article(title="T", url="http://user:s3cret@example.org/a")
    article = Article(**{**article.__dict__, "source": "user:s3cret@example.org"})
    for html in [render.article_line(article), render.sources_html([article]),
                 render.article_list_html([article], 0, 1), render.not_found_html(article)]:
        assert "s3cret" not in html and "user" not in html
        assert 'href="http://example.org/a"' in html and "example.org" in _visible(html)


def test_feeds_show_no_credentials_and_stay_short() -> None:
    from index.ingest.feeds import Feed

    now = datetime.now(timezone.utc)
    feed = Feed(id=1, url="http://user:s3cret@example.org/feed.xml", title="Gazette <&> " * 50_000, etag=None,
                last_modified=None, last_checked=now, last_success=None, last_error="failed & <odd> " * 50_000,
                failures=2, next_poll=now, articles_added=0)
    html = render.feeds_html([feed, feed])
    assert "s3cret" not in html and "http://example.org/feed.xml" in _visible(html)
    assert len(html) <= render.MAX_MESSAGE_CHARS and "#1" in html
    assert _visible(html).count("http://example.org/feed.xml") == 2  # both feeds fit


def _article_n(article_id: int, title: str, url: str | None = None) -> Article:
    return Article(id=article_id, title=title, text="", url=url or f"https://example.org/{article_id}",
                   published=date(2024, 3, article_id), source="Wire", author=None, added_by="t",
                   added_at=datetime.now(timezone.utc))


def _passage(article: Article, text: str, sentence: str, passage_id: int = 1) -> Hit:
    start = text.index(sentence)
    return Hit(passage_id=passage_id, article=article, text=text, start=0, end=len(text), score=1.0,
               dense_score=0.5, dense_rank=1, lexical_rank=1, best_sentence=(start, start + len(sentence)))


def _page() -> tuple[list[Hit], Article, Article]:
    council = _article_n(1, "Council & <votes>")
    rover = _article_n(2, "Rover lands")
    hits = [_passage(rover, "The rover landed.\n\nIt is the size of a car.", "It is the size of a car.", 1),
            _passage(council, "Intro.\n\nThe council voted 5 > 4 on Monday. More text.",
                     "The council voted 5 > 4 on Monday.", 2),
            _passage(rover, "Engineers cheered. The descent was automatic.", "The descent was automatic.", 3)]
    return hits, council, rover


def test_the_first_page_leads_with_the_answer_then_the_passages_grouped_by_article() -> None:
    hits, council, rover = _page()
    lead = render.answer_lead(Answer("q", hits, True, lead=1))
    assert lead is not None and lead.number == 2 and lead.hit is hits[1]
    [html] = render.answer_messages(hits, lead=lead)
    text, entities = parse_html(html)
    lines = html.split("\n")
    assert lines[0] == "<b>The council voted 5 &gt; 4 on Monday.</b>"  # the answer first, bold, escaped
    assert lines[1] == ('— <a href="https://example.org/1">Council &amp; &lt;votes&gt;</a>, Wire, 1 Mar 2024'
                        " · passage 2")
    # the lead's article comes first, its passage right under the citation (no second article line)
    assert lines[2].startswith("<blockquote expandable><b>2.</b> Intro.")
    assert "<b>The council voted 5 &gt; 4 on Monday.</b>" in lines[3]
    # then the other article once, with both its passages, each in its own expandable quote
    assert lines[4] == render.article_line(rover)
    assert lines[5].startswith("<blockquote expandable><b>1.</b> The rover landed.")  # paragraphs: one break
    assert lines[6] == "<b>It is the size of a car.</b></blockquote>"
    assert lines[7] == ("<blockquote expandable><b>3.</b> Engineers cheered. "
                        "<b>The descent was automatic.</b></blockquote>")
    assert html.count(render.article_line(rover)) == 1 and text.count("Council & <votes>") == 1
    assert [e["type"] for e in entities].count("expandable_blockquote") == 3


def test_without_a_chosen_lead_the_first_marked_passage_leads_and_later_pages_have_no_lead() -> None:
    hits, _, rover = _page()
    lead = render.answer_lead(Answer("q", hits, True))
    assert lead is not None and lead.number == 1 and lead.hit is hits[0]
    unmarked = [Hit(**{**hits[0].__dict__, "best_sentence": None}), *hits[1:]]
    assert render.answer_lead(Answer("q", unmarked, True)) is None
    [html] = render.answer_messages(hits, first_number=4)
    assert html.startswith(render.article_line(rover) + "\n<blockquote expandable><b>4.</b>")
    assert "<b>6.</b>" in html and "passage" not in html


def test_a_long_answer_splits_between_passages_with_balanced_tags_and_the_article_line_again() -> None:
    article = _article_n(3, "Long & <story>")
    sentence = "The answer & more <text>."
    hits = [_passage(article, f"{sentence} " + "Filler words & <more>. " * 60 + str(i), sentence, i)
            for i in range(9)]
    messages = render.answer_messages(hits, lead=render.answer_lead(Answer("q", hits, True, lead=0)),
                                      heading="<i>About: something</i>")
    assert len(messages) > 1 and messages[0].startswith("<i>About: something</i>\n<b>The answer &amp; more")
    for html in messages:
        parse_html(html)  # every message balanced on its own
        assert len(html) <= render.MAX_MESSAGE_CHARS
    for html in messages[1:]:  # a group going on in the next message shows its article line again
        assert html.startswith(render.article_line(article) + "\n<blockquote expandable>")
    joined = "".join(messages)
    assert all(f"<b>{i}.</b>" in joined for i in range(1, 10))


def test_visible_length_counts_collapsed_quotes_as_their_first_lines() -> None:
    quote = "word " * 200
    html = f"<b>Lead &amp; more</b>\n<blockquote expandable>{quote}</blockquote>\n<blockquote>open</blockquote>"
    shown = render.collapsed_length(quote)
    assert shown <= render.COLLAPSED_QUOTE_LINES * render.QUOTE_LINE_CHARS + render.COLLAPSED_QUOTE_LINES
    assert shown > (render.COLLAPSED_QUOTE_LINES - 1) * render.QUOTE_LINE_CHARS
    assert render.visible_length(html) == len("Lead & more\n") + shown + len("\nopen")
    # line breaks end lines: a quote of short lines shows only its first three
    assert render.collapsed_length("a\nbb\nccc\ndddd") == len("a\nbb\nccc")
    assert render.visible_length("<b>x</b>") == 1


def test_inline_results_texts_are_plain_and_trimmed() -> None:
    hit = _passage(_article_n(4, "A <very> long title " * 20), "Intro. " + "The answer & sentence " * 30 + ".",
                   "The answer & sentence " * 30 + ".")
    title, description = render.inline_title(hit), render.inline_description(hit)
    assert title.startswith("A <very> long title") and title.endswith("…") and len(title) <= 100
    assert description.startswith("The answer & sentence") and len(description) <= 200
    html = render.passage_html(hit)
    text, entities = parse_html(html)
    assert text.startswith("A <very> long title") and [e["type"] for e in entities] == [
        "text_link", "expandable_blockquote", "bold"]
