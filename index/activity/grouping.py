"""Open questions that say the same thing, grouped by the cosine of their embeddings."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def group_similar(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of row indexes, largest first: each row joins the first group whose first row (its example)
    has a cosine of at least ``threshold`` with it, else starts a group. Rows are unit vectors."""
    groups: list[list[int]] = []
    examples: list[np.ndarray] = []
    for row in range(len(vectors)):
        if examples:
            similarities = np.stack(examples) @ vectors[row]
            best = int(np.argmax(similarities))
            if similarities[best] >= threshold:
                groups[best].append(row)
                continue
        groups.append([row])
        examples.append(vectors[row])
    return sorted(groups, key=len, reverse=True)


def unit_rows(vectors: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1)
