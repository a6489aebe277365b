import time
from datetime import date

import pytest

from index.articles import MAX_AUTHOR_CHARS, MAX_SOURCE_CHARS, MAX_TITLE_CHARS
from index.errors import IngestError
from index.ingest.extract import from_bytes_named, from_html, from_markdown, from_plain_text
from tests.support.web_pages import ARTICLE_HTML


def test_html_main_text_and_metadata() -> None:
    draft = from_bytes_named(ARTICLE_HTML.encode(), "strike.html")
    assert draft.title == "Port strike ends after nine days"
    assert draft.published == date(2024, 3, 5)
    assert "seven percent" in draft.text
    assert "Subscribe to our newsletter" not in draft.text and "Weather" not in draft.text


def test_markdown_front_matter_and_markup_removed() -> None:
    draft = from_markdown("---\ntitle: A & B\ndate: 2020-01-02\nsource: Wire\nurl: https://example.org/a\n---\n\n"
                          "Some **bold** text with a [link](https://x.test).\n\n## Sub\n\nMore < text.")
    assert (draft.title, draft.published, draft.source, draft.url) == ("A & B", date(2020, 1, 2), "Wire", "https://example.org/a")
    assert draft.text == "Some bold text with a link.\n\nSub\n\nMore < text."


def test_plain_text_first_line_is_the_title() -> None:
    draft = from_plain_text("Headline here\n\nBody line one.\nBody line two.")
    assert draft.title == "Headline here"
    assert draft.text == "Body line one.\nBody line two."


def test_binary_and_unsupported_files_are_refused() -> None:
    with pytest.raises(IngestError, match="binary"):
        from_bytes_named(b"\x89PNG\r\n\x1a\n\x00\x00\x00", "picture.txt")
    with pytest.raises(IngestError, match="unsupported file type"):
        from_bytes_named(b"%PDF-1.4", "paper.docx")


def test_latin1_text_is_decoded() -> None:
    text = "Café news\n\nThe café reopened on Friday after a long renovation."
    draft = from_bytes_named(text.encode("latin-1"), "cafe.txt")
    assert draft.title == "Café news"


def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF with a text layer, written by hand (no PDF writer needed)."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        " /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_text_layer_is_read() -> None:
    draft = from_bytes_named(make_pdf(["Bridge reopens after repairs", "The old bridge reopened on Monday",
                                       "after two years of repairs."]), "bridge.pdf")
    assert draft.title == "Bridge reopens after repairs"
    assert draft.text == "The old bridge reopened on Monday after two years of repairs."


def test_damaged_and_textless_pdfs_are_refused() -> None:
    with pytest.raises(IngestError, match="not a readable PDF"):
        from_bytes_named(b"%PDF-1.4\nthis is not really a pdf", "broken.pdf")
    with pytest.raises(IngestError, match="no text layer"):
        from_bytes_named(make_pdf([]), "scan.pdf")


def test_amp_and_mobile_pages_take_their_canonical_address() -> None:
    amp = ARTICLE_HTML.replace("<head>", '<head><link rel="canonical" href="https://harbour.test/news/strike">')
    assert from_bytes_named(amp.encode(), "p.html", url="https://m.harbour.test/amp/news/strike").url \
        == "https://harbour.test/news/strike"
    # a page may not claim another site's address
    assert from_bytes_named(amp.encode(), "p.html", url="https://evil.test/copy").url == "https://evil.test/copy"


# -- encodings: byte-order marks, UTF-8, and legacy encodings that the detector must not mix up ----------
FRENCH = "Café élu à Zürich\n\nLe maire a été élu à Zürich après une longue campagne électorale à l'été."
GERMAN = "Schöne Grüße aus München\n\nDie Straße ist für Fußgänger gesperrt, während die Bauarbeiten andauern."
RUSSIAN = "Новости дня\n\nВ Москве открылась новая станция метро после долгого строительства. Жители довольны."
POLISH = "Wiadomości z Łodzi\n\nPrezydent miasta ogłosił, że źródła finansowania zostały zabezpieczone."


@pytest.mark.parametrize("text, encoding", [
    (FRENCH, "utf-8"), (FRENCH, "utf-8-sig"), (RUSSIAN, "utf-8-sig"),
    (FRENCH, "utf-16-le"), (FRENCH, "utf-16-be"), (RUSSIAN, "utf-16-le"), (RUSSIAN, "utf-16-be"),
    (FRENCH, "utf-32"),
    (FRENCH, "latin-1"), (FRENCH, "cp1252"), (GERMAN, "latin-1"), (GERMAN, "cp1252"),
    (RUSSIAN, "cp1251"), (RUSSIAN, "koi8-r"), (POLISH, "cp1250"),
])
def test_files_in_real_encodings_are_read_as_written(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    if encoding.startswith("utf-16-"):  # a byte-order mark, as editors write it
        data = ("\ufeff" + text).encode(encoding)
    draft = from_bytes_named(data, "story.txt")
    assert (draft.title, draft.text) == tuple(part.strip() for part in text.split("\n\n", 1))


def test_nul_characters_never_reach_the_store() -> None:
    with pytest.raises(IngestError, match="binary"):
        from_bytes_named(("\ufeffTitle\n\nText with a \x00 in it.").encode("utf-16-le"), "odd.txt")
    with pytest.raises(IngestError, match="not valid UTF-16"):
        from_bytes_named(b"\xff\xfeA\x00\x00\xd8", "broken.txt")  # a lone surrogate after the mark


# -- hostile front matter and over-long metadata --------------------------------------------------------
def _billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
    lines.append(f"title: *{chr(ord('a') + levels - 1)}")
    return "---\n" + "\n".join(lines) + "\n---\n\n# Heading\n\nBody text of the article."


def test_front_matter_aliases_are_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(IngestError, match="anchors or aliases"):
        from_bytes_named(_billion_laughs().encode(), "laughs.md")
    assert time.monotonic() - started < 5
    with pytest.raises(IngestError, match="anchors or aliases"):  # a merge key needs an alias too
        from_markdown("---\nbase: &b {title: T}\n<<: *b\n---\nBody text.")


def test_front_matter_too_large_deep_or_invalid_is_refused_clearly() -> None:
    with pytest.raises(IngestError, match="too long"):
        from_markdown("---\ntitle: " + "x" * 20_000 + "\n---\nBody text.")
    with pytest.raises(IngestError, match="nests deeper"):
        from_markdown("---\ntitle: " + "[" * 50 + "]" * 50 + "\n---\nBody text.")
    with pytest.raises(IngestError, match="not valid YAML"):
        from_markdown("---\ntitle: [unclosed\n---\nBody text.")
    with pytest.raises(IngestError, match="not valid YAML"):
        from_markdown("---\ntitle: !!python/object:os.system x\n---\nBody text.")


def test_markdown_without_front_matter_is_unchanged() -> None:
    draft = from_markdown("# The heading\n\n---\n\nText after a rule.\n\n---\n")
    assert draft.title == "The heading" and "Text after a rule." in draft.text


def test_every_metadata_field_is_capped_whatever_the_input() -> None:
    huge = "word " * 100_000
    drafts = [
        from_markdown(f"---\ntitle: {huge[:10_000]}\nsource: {huge[:1000]}\nauthor: {huge[:1000]}\n---\nBody."),
        from_plain_text("Body text.", title=huge, source=huge, author=huge),
        from_plain_text(huge + "\n\nBody."),
        from_html(ARTICLE_HTML.replace("Port strike ends after nine days", huge)),
    ]
    for draft in drafts:
        assert len(draft.title) <= MAX_TITLE_CHARS and "\n" not in draft.title
        assert draft.source is None or len(draft.source) <= MAX_SOURCE_CHARS
        assert draft.author is None or len(draft.author) <= MAX_AUTHOR_CHARS
    assert drafts[0].title.endswith("…") and drafts[1].title.startswith("word word")
    long_url = "https://example.org/" + "a" * 5000
    assert from_plain_text("Body.", title="T", url=long_url).url is None


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,x",
                                 "file:///etc/passwd", "ftp://example.org/a", "//example.org/a", "not a url",
                                 "http://exa mple.org/", "http://example.org:70000/"])
def test_only_web_links_are_kept_as_the_article_link(url: str) -> None:
    assert from_markdown(f"---\ntitle: T\nurl: \"{url}\"\n---\nBody text.").url is None


def test_credentials_in_links_are_never_kept() -> None:
    draft = from_markdown("---\ntitle: T\nurl: http://user:secret@example.org/a\n---\nBody text.")
    assert draft.url == "http://example.org/a"
    page = from_bytes_named(ARTICLE_HTML.replace('<meta property="og:site_name" content="Harbour Times">', "")
                            .encode(), "p.html", url="HTTPS://user:secret@harbour.test/news/strike")
    assert page.url == "https://harbour.test/news/strike"
    assert "secret" not in (page.source or "") and "user" not in (page.source or "")
    assert from_plain_text("Body.", title="T", source="user:secret@harbour.test").source == "harbour.test"
