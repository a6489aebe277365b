"""Bytes to text: a byte-order mark, else UTF-8, else the likeliest legacy encoding (charset-normalizer)."""

from __future__ import annotations

import codecs
import unicodedata

from charset_normalizer import from_bytes

from index.errors import IngestError

# Byte-order marks, longest first (UTF-32's little-endian mark begins with UTF-16's).
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Legacy encodings in order of how common they are in text files today: among the detector's near-equal
# guesses (short texts often leave several), the more common one wins.
_COMMON_ENCODINGS = (
    "cp1252", "cp1251", "cp1250", "iso8859_2", "koi8_r", "koi8_u", "cp1253", "iso8859_7", "cp1254", "cp1257",
    "cp1255", "cp1256", "iso8859_5", "iso8859_15", "cp932", "shift_jis", "euc_jp", "gb18030", "big5", "cp949",
    "euc_kr", "cp874",
)
# How much more chaos (the detector's measure of garbling) a guess may show and still be near-equal.
_NEAR_EQUAL_CHAOS = 0.05
# Characters of a file looked at when guesses are compared.
_SAMPLE_CHARS = 65536


def decode_text(data: bytes, name: str) -> str:
    """The text of a file: by its byte-order mark, else UTF-8, else the detected encoding; binary data is refused."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise IngestError(f"{name} starts with a {encoding.upper()} byte-order mark but is not "
                                  f"valid {encoding.upper()} text.") from None
            return _refuse_binary(text, name)
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name} looks like a binary file, not text, Markdown or HTML.")
    try:
        return _refuse_binary(data.decode("utf-8"), name)
    except UnicodeDecodeError:
        pass
    encoding = detect_legacy_encoding(data)
    if encoding is None:
        raise IngestError(f"{name} is not readable text (unknown encoding).")
    return _refuse_binary(data.decode(encoding, errors="replace"), name)


def detect_legacy_encoding(data: bytes) -> str | None:
    """The likeliest single-byte or East Asian encoding of ``data`` (not UTF-8), or None.

    charset-normalizer ranks the candidates; among those it finds nearly as good as its first, the one
    whose text has the fewest oddities (symbols and case changes inside words) wins, then the more
    common encoding: on short texts the detector alone often reads Latin-1 French as Central European."""
    results = list(from_bytes(data))
    if not results:
        return None
    best_chaos = results[0].chaos
    near = [result.encoding for result in results if result.chaos <= best_chaos + _NEAR_EQUAL_CHAOS]
    sample = data[: _SAMPLE_CHARS]

    def rank(item: tuple[int, str]) -> tuple[int, int, int]:
        order, encoding = item
        common = _COMMON_ENCODINGS.index(encoding) if encoding in _COMMON_ENCODINGS else len(_COMMON_ENCODINGS)
        return oddities(sample.decode(encoding, errors="ignore")), common, order

    return min(enumerate(near), key=rank)[1]


def oddities(text: str) -> int:
    """How often the text shows what a wrong decoding produces: a symbol, superscript, fraction or control
    character touching a letter (``£odzi``, ``og³osi³``), or a capital between letters (``ZŁrich``)."""
    count = 0
    for index in range(1, len(text) - 1):
        char = text[index]
        if char.isascii():
            continue
        before, after = text[index - 1].isalpha(), text[index + 1].isalpha()
        category = unicodedata.category(char)
        if category[0] in "SNC" and (before or after):
            count += 1
        elif category == "Lu" and before and text[index + 1].islower():
            count += 1
    return count


def _refuse_binary(text: str, name: str) -> str:
    """The text, unless it holds NUL characters (no store keeps them; no real text has them)."""
    if "\x00" in text:
        raise IngestError(f"{name} looks like a binary file, not text, Markdown or HTML.")
    return text
