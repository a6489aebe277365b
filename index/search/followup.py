"""Follow-up questions: whether a message depends on the chat's earlier turns, and how it is searched with them.

A message is read with its context when it replies to one of the bot's answers (that answer's turn), or
when it comes within the conversation's time and depends on the turn before: it has a pronoun or a
demonstrative ("he", "that"), it opens with ellipsis or contrast ("and in 2023?", "what about
Germany?"), or its own words are too unspecific to find anything (the summed specificity of its content
words is low). Specificity is a word's inverse document frequency in the library as a share of the
largest possible (a word in one passage scores 1), read through the keyword search, so it works on either
store and on libraries of any size. Anything else is a new question, searched as it is. A question asked
again is read as it was the first time, never as a follow-up of its own earlier asking.

A follow-up is searched twice: alone, and in its context: after the earlier question, with the most
specific words of the turns before that (the idea of Historical Query Expansion: keep the conversation's
topic words, chosen by how specific they are).
The two rankings are fused by reciprocal rank with the question alone weighted higher, so its own words
still decide, and the articles the earlier answer showed get a small bonus."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Sequence

from index.library import Library
from index.search.hybrid import Answer, Hit
from index.stores.base import Conversations, Turn, query_words

_WORDS = re.compile(r"\w+", re.UNICODE)
# Words that point back to something said before.
POINTING_WORDS = frozenset(
    "he she him her his hers they them their theirs it its this that these those there then such same "
    "former latter".split())
# Openings of an ellipsis or a contrast: "and in 2023?", "what about Germany?".
_OPENERS = re.compile(r"^\W*(and|but|also|so|what about|how about|what of|what else|same for|as for|"
                      r"compared|instead)\b", re.IGNORECASE)
# Openings that make an ellipsis only in a short message ("why?", "in 2023?", "since when?"), not in
# a whole question ("In which city ...").
_SHORT_OPENERS = re.compile(r"^\W*(why|how come|how so|when|where|who|in|on|for|from|since|after|before|by|"
                            r"with|without|except)\b", re.IGNORECASE)
SHORT_WORDS = 4
# Passages (at most) a word's document frequency is counted up to: rarer words are told apart exactly,
# commoner ones all count as common.
FREQUENCY_CAP = 2000
# Words whose specificity is remembered at most (all are forgotten beyond, and when the library changes).
REMEMBERED_WORDS = 50_000
# A question whose content words' specificities add up to less than this finds little by itself: it
# is read with the earlier turn even without a pointing word.
WEAK_TOTAL = 0.8
# With a pointing word or an elliptic opening, a question is still self-contained from this total on.
SELF_CONTAINED_TOTAL = 2.0
# A word of an earlier turn is carried into a follow-up's search from this specificity on, at most
# this many of them.
CONTEXT_MIN_SPECIFICITY = 0.3
CONTEXT_WORDS = 6
# Words a turn keeps for the turns after it.
KEPT_WORDS = 12
# The fusion of a follow-up's two rankings: weights of the question alone and of the question with the
# earlier words, the bonus for an article the earlier answer showed, and how deep each list is read.
ALONE_WEIGHT = 1.0
CONTEXT_WEIGHT = 0.95
EARLIER_ARTICLE_BONUS = 0.006
FUSION_DEPTH = 30
FUSION_RRF_K = 60


@dataclass(frozen=True)
class Reading:
    """How a message was understood: as a new question, or as a follow-up of ``context``."""

    reason: str  # "" (a new question), "reply", "pointing", "ellipsis" or "weak"
    context: tuple[Turn, ...] = ()
    words: tuple[str, ...] = ()  # the earlier turns' words its search adds

    @property
    def follow_up(self) -> bool:
        return bool(self.reason) and bool(self.context)

    @property
    def about(self) -> str:
        """What the follow-up was read as being about: the earlier answer's article, else its question."""
        if not self.context:
            return ""
        turn = self.context[-1]
        return turn.title or turn.question


NEW_QUESTION = Reading("")


class Specificity:
    """Each word's inverse document frequency in the library over the largest possible (0 for a word in
    every passage or in none, 1 for a word in one), counted through the keyword search and remembered
    until the library changes."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self._lock = threading.Lock()
        self._version: int | None = None
        self._passages = 0
        self._known: dict[str, float] = {}

    def __call__(self, word: str) -> float:
        return self.of([word])[word]

    def of(self, words: Sequence[str]) -> dict[str, float]:
        """The specificity of each word (the library's version is read once per call)."""
        with self._lock:
            version = self.library.store.data_version()
            if version != self._version or len(self._known) > REMEMBERED_WORDS:
                self._version, self._known = version, {}
                self._passages = self.library.store.count_passages()
            largest = math.log(self._passages + 1)
            for word in words:
                if word not in self._known:
                    holding = len(self.library.backend.keywords.lexical_search(word, FREQUENCY_CAP))
                    self._known[word] = math.log((self._passages + 1) / holding) / largest if holding and largest \
                        else 0.0
            return {word: self._known[word] for word in words}


def has_pointing_word(question: str) -> bool:
    return any(word in POINTING_WORDS for word in _WORDS.findall(question.casefold()))


def opens_elliptically(question: str) -> bool:
    if _OPENERS.match(question):
        return True
    return len(_WORDS.findall(question)) <= SHORT_WORDS and _SHORT_OPENERS.match(question) is not None


def reason_to_follow(question: str, specificity: dict[str, float]) -> str:
    """Why a message that came within the conversation's time depends on the turn before ("" when it
    does not): ``specificity`` holds its content words' specificities."""
    total = sum(specificity.values())
    if total < WEAK_TOTAL:
        return "weak"
    if total < SELF_CONTAINED_TOTAL:
        if has_pointing_word(question):
            return "pointing"
        if opens_elliptically(question):
            return "ellipsis"
    return ""


def without_repeats(question: str, turns: tuple[Turn, ...]) -> tuple[Turn, ...]:
    """The turns a question asked again is read with: those before its last asking, so that it is read as
    it was then (a new question stays new, a follow-up keeps the turn it followed), never as a follow-up
    of itself, whose boost for the answer's articles would hide a newer article."""
    words = _WORDS.findall(question.casefold())
    while turns and _WORDS.findall(turns[-1].question.casefold()) == words:
        turns = turns[:-1]
    return turns


def context_words(question: str, turns: Sequence[Turn], specificity: Specificity) -> tuple[str, ...]:
    """The most specific words of the earlier turns (newest turn first) that the question lacks."""
    own = set(query_words(question))
    chosen: list[str] = []
    for turn in reversed(turns):
        candidates = [w for w in (*turn.context_words, *query_words(turn.title)) if w not in own and w not in chosen]
        scored = specificity.of(candidates)
        for word in sorted(candidates, key=lambda w: -scored[w]):
            if scored[word] >= CONTEXT_MIN_SPECIFICITY and len(chosen) < CONTEXT_WORDS:
                chosen.append(word)
    return tuple(chosen)


def turn_words(question: str, reading: Reading, specificity: Specificity) -> tuple[str, ...]:
    """The words a turn keeps for later follow-ups: its own specific words, most specific first, then
    those it was read with."""
    own = query_words(question)
    scored = specificity.of(own)
    mine = [w for w in sorted(own, key=lambda w: -scored[w]) if scored[w] >= CONTEXT_MIN_SPECIFICITY]
    return tuple(dict.fromkeys([*mine, *reading.words]))[:KEPT_WORDS]


def turn_from_answer(answer: Answer, asked_at: datetime, specificity: Specificity, token: str | None = None) -> Turn:
    """A turn for an answer kept for the buttons (a reply to an answer older than the conversation)."""
    return make_turn(answer, NEW_QUESTION, asked_at, specificity, token)


def make_turn(answer: Answer, reading: Reading, asked_at: datetime, specificity: Specificity,
              token: str | None) -> Turn:
    articles = tuple(dict.fromkeys(hit.article.id for hit in answer.hits))
    return Turn(question=answer.question, asked_at=asked_at,
                context_words=turn_words(answer.question, reading, specificity), article_ids=articles,
                passage_ids=tuple(hit.passage_id for hit in answer.hits),
                title=answer.hits[0].article.title if answer.answered and answer.hits else "", token=token)


class FollowUps:
    """Reads each chat's messages with its conversation, and searches follow-ups with their context."""

    def __init__(self, library: Library, conversations: Conversations) -> None:
        self.library = library
        self.conversations = conversations
        self.specificity = Specificity(library)

    def read(self, chat_id: int, question: str, asked_at: datetime, replied: Turn | None = None) -> Reading:
        """How a message is understood: as a follow-up of ``replied`` (the answer it replies to), of the
        chat's recent turns, or as a new question."""
        if replied is not None:
            turns = (replied,)
            return Reading("reply", turns, context_words(question, turns, self.specificity))
        turns = without_repeats(question, tuple(self.conversations.recent(chat_id, asked_at)))
        if not turns:
            return NEW_QUESTION
        reason = reason_to_follow(question, self.specificity.of(query_words(question)))
        if not reason:
            return NEW_QUESTION
        return Reading(reason, turns, context_words(question, turns, self.specificity))

    def search(self, question: str, reading: Reading, k: int, now: date | datetime | None = None,
               limit: int | None = None) -> Answer:
        """The question's answer: as any question when it is new, else with its context."""
        limit = limit or 3 * k
        if not reading.follow_up:
            return self.library.search(question, k=k, now=now, limit=limit)
        return search_with_context(self.library, question, reading, k, now, limit)

    def remember(self, chat_id: int, reading: Reading, answer: Answer, asked_at: datetime,
                 token: str | None = None) -> Turn:
        """Keep the turn in the chat's conversation."""
        turn = make_turn(answer, reading, asked_at, self.specificity, token)
        self.conversations.add(chat_id, turn)
        return turn


def context_query(question: str, reading: Reading) -> str:
    """The question read in its context: the earlier question, the specific words that one was itself read
    with, then the question (measured better than the question with the specific words alone, see
    docs/benchmarks.md)."""
    if not reading.context:
        return ""
    earlier = reading.context[-1].question
    inherited = [word for word in reading.words if word not in query_words(earlier)]
    return " ".join([earlier, *inherited, question])


def search_with_context(library: Library, question: str, reading: Reading, k: int, now: date | datetime | None,
                        limit: int) -> Answer:
    """A follow-up's answer: the question alone and with the earlier words, fused (see the module's doc)."""
    depth = max(limit, FUSION_DEPTH)
    alone = library.search(question, k=k, now=now, limit=depth, mark=0)
    expanded = context_query(question, reading)
    with_context = library.search(expanded, k=k, now=now, limit=depth, mark=0) if expanded else Answer(question)
    earlier = set(reading.context[-1].article_ids)
    scores: dict[int, float] = {}
    hits: dict[int, Hit] = {}
    for weight, ranking in ((ALONE_WEIGHT, alone), (CONTEXT_WEIGHT, with_context)):
        for rank, hit in enumerate(ranking.hits, 1):
            scores[hit.passage_id] = scores.get(hit.passage_id, 0.0) + weight / (FUSION_RRF_K + rank)
            hits.setdefault(hit.passage_id, hit)
    for pid, hit in hits.items():
        if hit.article.id in earlier:
            scores[pid] += EARLIER_ARTICLE_BONUS
    ranked = sorted(hits, key=lambda pid: -scores[pid])[:limit]
    fused = Answer(question, [replace(hits[pid], score=scores[pid]) for pid in ranked],
                   alone.answered or with_context.answered, alone.query_vector)
    return library.mark_hits(fused, 0, k)  # which also chooses the sentence the reply leads with
