"""Draws the plots of docs/benchmarks.md from the figures in docs/plot_data.csv.

    .venv/bin/pip install matplotlib     # not a project dependency: only this script needs it
    .venv/bin/python benchmarks/plots.py # writes docs/latency_vs_size.png and docs/recall_at_k.png

Each row of the CSV is one figure printed by a benchmark, with the date and the command that printed
it; when a benchmark is run again, change its rows there and run this script."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
DATA = DOCS / "plot_data.csv"
# Answer-recall on ~180 questions carries about this much uncertainty either way (95%).
RECALL_NOISE = 0.07
# Series drawn as lines; every other recall series is a single-k peer, drawn as a marker.
PROJECT_SERIES = "this project, all 183 questions"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    date: str
    command: str


def read_figures(path: Path) -> dict[str, dict[str, list[Point]]]:
    """plot name -> series name -> points in the order of x."""
    plots: dict[str, dict[str, list[Point]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            point = Point(float(row["x"]), float(row["y"]), row["date"], row["command"])
            plots[row["plot"]][row["series"]].append(point)
    for series in plots.values():
        for points in series.values():
            points.sort(key=lambda point: point.x)
    return plots


def draw_latency(series: dict[str, list[Point]], target: Path) -> None:
    """Median question time (no sentence marked) against the number of passages, log-log."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    # The first key a series name contains picks its style ("same run as PostgreSQL" before "PostgreSQL").
    styles = {"same run": dict(marker="o", linestyle="none", fillstyle="none", markersize=9, markeredgewidth=2),
              "txtai": dict(marker="s", linestyle="--"), "PostgreSQL": dict(marker="D", linestyle="none", markersize=8)}
    for name, points in series.items():
        style = next((s for key, s in styles.items() if key in name), dict(marker="o", linestyle="-", linewidth=2))
        axes.plot([p.x for p in points], [p.y for p in points], label=name, **style)
        for point in points:
            axes.annotate(f"{point.y:g} ms", (point.x, point.y), textcoords="offset points", xytext=(6, -4),
                          fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(1_000, 3_000_000)
    axes.set_xlabel("passages in the library")
    axes.set_ylabel("median question → ranked passages (ms)")
    axes.set_title("Search time against collection size (no bold sentence marked)", fontsize=11)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.text(0.01, 0.01, "2-core VM; figures and commands in docs/plot_data.csv", fontsize=7, color="gray")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(target)
    plt.close(figure)


def draw_recall(series: dict[str, list[Point]], target: Path) -> None:
    """Answer-recall@k on rtqa-dev for the project, its reranker variant and its baselines."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    peer_markers = iter(["v", "^", "<", ">", "P", "X"])
    peer_offsets = iter([-0.36, -0.12, 0.12, 0.36, -0.6, 0.6])  # peers measured at one k are spread around it
    for name, points in series.items():
        xs, ys = [p.x for p in points], [p.y for p in points]
        if len(points) == 1:
            axes.plot([xs[0] + next(peer_offsets)], ys, marker=next(peer_markers), linestyle="none", markersize=8,
                      label=f"{name}, k={xs[0]:g}")
            continue
        width = 2.5 if name == PROJECT_SERIES else 1.5
        dashes = "--" if "txtai" in name else ":" if "reranker" in name else "-"
        axes.plot(xs, ys, marker="o", linestyle=dashes, linewidth=width, label=name)
        if name == PROJECT_SERIES:
            axes.fill_between(xs, [y - RECALL_NOISE for y in ys], [y + RECALL_NOISE for y in ys], alpha=0.12,
                              label=f"± {RECALL_NOISE:.2f} (noise of ~180 questions)")
    axes.set_xticks([1, 3, 5, 10])
    axes.set_xlim(0.5, 10.5)
    axes.set_ylim(0.25, 0.8)
    axes.set_xlabel("k (passages looked at)")
    axes.set_ylabel("answer-recall@k")
    axes.set_title("rtqa-dev: share of questions answered within the top k passages", fontsize=11)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7.5, loc="lower right")
    figure.text(0.01, 0.01, "183 questions, 1,453 articles; figures and commands in docs/plot_data.csv",
                fontsize=7, color="gray")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(target)
    plt.close(figure)


def main() -> int:
    try:
        import matplotlib
    except ImportError:
        print("error: the plots need matplotlib: .venv/bin/pip install matplotlib", file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    plots = read_figures(DATA)
    draw_latency(plots["latency"], DOCS / "latency_vs_size.png")
    draw_recall(plots["recall"], DOCS / "recall_at_k.png")
    print(f"wrote {DOCS / 'latency_vs_size.png'} and {DOCS / 'recall_at_k.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
