from datetime import date

import pytest

from index.errors import IngestError
from index.ingest.extract import from_bytes_named, from_markdown, from_plain_text
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
    draft = from_bytes_named("Café news\n\nThe café reopened on Friday after a long renovation.".encode("latin-1"), "cafe.txt")
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
