"""The vectors of recent texts: held up to a capacity, the least recently used forgotten first."""

from __future__ import annotations

import numpy as np

from index.embedding.recent import RecentVectors


class CountingEmbed:
    """A stand-in embedding: each text's vector is its length, and every text asked for is recorded."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.asked.extend(texts)
        return np.array([[float(len(text)), 1.0] for text in texts], dtype=np.float32)


def test_only_texts_not_held_are_embedded_and_each_once() -> None:
    embed = CountingEmbed()
    recent = RecentVectors(embed, capacity=10)
    first = recent(["a", "bb", "a"])
    assert embed.asked == ["a", "bb"] and first[:, 0].tolist() == [1.0, 2.0, 1.0]
    again = recent(["ccc", "bb"])
    assert embed.asked == ["a", "bb", "ccc"] and again[:, 0].tolist() == [3.0, 2.0]
    assert len(recent) == 3


def test_the_least_recently_used_text_is_forgotten_first() -> None:
    embed = CountingEmbed()
    recent = RecentVectors(embed, capacity=2)
    recent(["a", "bb"])
    recent(["a"])  # "a" is now the more recent of the two
    recent(["ccc"])  # one too many: "bb" goes
    embed.asked.clear()
    recent(["a", "ccc", "bb"])
    assert embed.asked == ["bb"] and len(recent) == 2
