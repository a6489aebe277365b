"""Sentence-aware passages: whole sentences packed up to a token budget, with overlap."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import sentencex

TokenCounter = Callable[[Sequence[str]], list[int]]
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    """A passage of an article: its text is ``article_text[start:end]``."""

    start: int
    end: int
    text: str


def split_sentences(text: str, language: str = "en") -> list[Span]:
    """Character spans of the sentences in ``text``, trimmed of surrounding whitespace."""
    spans: list[Span] = []
    for boundary in sentencex.get_sentence_boundaries(language, text):
        start, end = boundary["start_index"], boundary["end_index"]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append(Span(start, end))
    return spans


def embedding_input(title: str, text: str, title_prefix: bool) -> str:
    """What is embedded and keyword-indexed for a passage."""
    return f"{title}\n{text}" if title_prefix and title else text


class Chunker:
    """Packs sentences into passages of at most ``max_tokens`` model tokens (title prefix included)."""

    def __init__(self, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int,
                 model_window: int, title_prefix: bool = True) -> None:
        if max_tokens < 16:
            raise ValueError("chunking.max_tokens must be at least 16")
        self.count_tokens = count_tokens
        # [CLS] and [SEP] take two places of the model's window.
        self.max_tokens = min(max_tokens, model_window - 2)
        self.overlap_tokens = max(0, min(overlap_tokens, self.max_tokens // 2))
        self.title_prefix = title_prefix

    def chunk(self, title: str, text: str) -> list[Passage]:
        """Split an article body into passages; every character of every sentence is in some passage."""
        budget = self._budget(title)
        sentences, counts = self._fit_sentences(text, split_sentences(text), budget)
        if not sentences:
            return []
        passages: list[Passage] = []
        first = 0
        while first < len(sentences):
            last, used = first, counts[first]
            while last + 1 < len(sentences) and used + counts[last + 1] <= budget:
                last += 1
                used += counts[last]
            # A heading (a line without closing punctuation) belongs to the text after it.
            if last > first and last + 1 < len(sentences) and _is_heading(text, sentences[last]):
                last -= 1
            start, end = sentences[first].start, sentences[last].end
            passages.append(Passage(start, end, text[start:end]))
            if last + 1 >= len(sentences):
                break
            # Step back over trailing sentences that fit the overlap, but always move forward.
            following, carried = last + 1, 0
            while following - 1 > first and carried + counts[following - 1] <= self.overlap_tokens:
                following -= 1
                carried += counts[following]
            first = following
        return passages

    def _budget(self, title: str) -> int:
        if not (self.title_prefix and title):
            return self.max_tokens
        title_tokens = self.count_tokens([title])[0] + 1  # the newline between title and text
        return max(self.max_tokens // 2, self.max_tokens - title_tokens)

    def _fit_sentences(self, text: str, sentences: list[Span], budget: int) -> tuple[list[Span], list[int]]:
        """Cut sentences longer than the budget at word boundaries, so none is truncated by the model.
        Returns the spans and their token counts (each text is tokenised once, the cut pieces twice)."""
        if not sentences:
            return [], []
        counts = self.count_tokens([text[s.start:s.end] for s in sentences])
        fitted: list[Span] = []
        fitted_counts: list[int | None] = []
        for span, count in zip(sentences, counts):
            if count <= budget:
                fitted.append(span)
                fitted_counts.append(count)
                continue
            words = [(m.start() + span.start, m.end() + span.start) for m in _WORD.finditer(text[span.start:span.end])]
            word_counts = self.count_tokens([text[a:b] for a, b in words])
            piece_start, used = words[0][0], 0
            prev_end = piece_start
            for (a, b), n in zip(words, word_counts):
                if used and used + n > budget:
                    fitted.append(Span(piece_start, prev_end))
                    fitted_counts.append(None)
                    piece_start, used = a, 0
                used += n
                prev_end = b
            fitted.append(Span(piece_start, prev_end))
            fitted_counts.append(None)
        recount = [i for i, n in enumerate(fitted_counts) if n is None]
        if recount:
            for i, n in zip(recount, self.count_tokens([text[fitted[i].start:fitted[i].end] for i in recount])):
                fitted_counts[i] = n
        return fitted, [int(n) for n in fitted_counts]  # type: ignore[arg-type]


def _is_heading(text: str, span: Span) -> bool:
    """A short line standing alone in its paragraph with no sentence-ending punctuation."""
    line = text[span.start:span.end]
    before, after = text[max(0, span.start - 2):span.start], text[span.end:span.end + 2]
    return ("\n" in before or span.start == 0) and (after.startswith("\n") or not after) \
        and len(line) < 120 and not line.rstrip("\"'”’)»").endswith((".", "!", "?", ":", ";"))
