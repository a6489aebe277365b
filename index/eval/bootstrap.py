"""A paired bootstrap over questions: how much one setting differs from another on the same questions,
with a 95% interval, so that a change is called a gain only when its interval excludes zero."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Sequence, TextIO, TypeVar

import numpy as np

RESAMPLES = 4000
Result = TypeVar("Result")


@dataclass(frozen=True)
class Difference:
    """``other`` minus ``base``, averaged over the questions, and the 2.5th and 97.5th percentiles of
    that mean over question sets resampled with replacement."""

    mean: float
    low: float
    high: float


def paired_difference(base: Sequence[float], other: Sequence[float], resamples: int = RESAMPLES,
                      seed: int = 0) -> Difference:
    """The mean per-question difference of two settings on the same questions, with its 95% interval."""
    if len(base) != len(other):
        raise ValueError("a paired comparison needs the same questions on both sides")
    if not base:
        return Difference(float("nan"), float("nan"), float("nan"))
    differences = np.asarray(other, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[picks].mean(axis=1)
    return Difference(float(differences.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def print_differences(runs: dict[str, Sequence[Result]], metrics: dict[str, Callable[[Result], float]],
                      out: TextIO | None = None) -> None:
    """Each run's difference to the first run, per metric, with its 95% interval (the runs' results must
    be for the same questions, in the same order); printed to ``out``, default standard output."""
    out = out or sys.stdout
    names = list(runs)
    base = names[0]
    print(f"paired bootstrap against {base} ({RESAMPLES} resamples of the questions, 95% interval):", file=out)
    for name in names[1:]:
        cells = []
        for metric, value in metrics.items():
            difference = paired_difference([value(r) for r in runs[base]], [value(r) for r in runs[name]])
            cells.append(f"{metric} {difference.mean:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}]")
        print(f"  {name}: " + "; ".join(cells), file=out)
