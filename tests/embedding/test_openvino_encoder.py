"""The OpenVINO runtime: its converted-model cache, falling back to torch, no usage reports, threads."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import index.embedding.embedder as embedding_module
from index.config import EmbeddingSettings
from index.embedding.embedder import Embedder
from index.embedding.openvino import OpenVinoEncoder

PROJECT = Path(__file__).resolve().parents[2]
TEXTS = ["The harbour authority closed the northern pier after the storm damaged its railings.",
         "Who won the regional chess championship?",
         "Volunteers counted 412 migrating cranes at the lake on Sunday morning. " * 5]


def encoder_for(embedder: Embedder, cache_dir: Path) -> OpenVinoEncoder:
    """A second OpenVINO encoder of the session's model, caching into ``cache_dir``."""
    return OpenVinoEncoder(embedder._model, embedding_module.resolve_model(embedder.settings.model),
                           embedder.dimension, embedder.precision, cache_dir=cache_dir)


def test_the_converted_model_is_kept_and_read_back(embedder: Embedder, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = encoder_for(embedder, tmp_path)
    kept = list(tmp_path.glob("*/model.xml"))
    assert len(kept) == 1 and kept[0].with_suffix(".bin").stat().st_size > 10_000_000
    assert not list(tmp_path.glob(".converting-*"))  # the staging folder is gone

    def no_conversion(self: OpenVinoEncoder) -> None:
        raise AssertionError("the kept model should have been read")

    monkeypatch.setattr(OpenVinoEncoder, "_convert", no_conversion)
    second = encoder_for(embedder, tmp_path)
    assert np.allclose(first.encode(TEXTS, 8), second.encode(TEXTS, 8), atol=1e-6)


def test_a_damaged_kept_model_is_converted_again(embedder: Embedder, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    reference = encoder_for(embedder, tmp_path).encode(TEXTS, 8)
    kept = next(tmp_path.glob("*/model.xml"))
    kept.write_text("<net>cut short")
    with caplog.at_level(logging.WARNING, logger="index.embedding.openvino"):
        again = encoder_for(embedder, tmp_path)
    assert "converting again" in caplog.text
    assert np.allclose(again.encode(TEXTS, 8), reference, atol=1e-5)


def test_an_unwritable_cache_still_gives_a_working_encoder(embedder: Embedder, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    with caplog.at_level(logging.WARNING, logger="index.embedding.openvino"):
        encoder = encoder_for(embedder, blocker / "openvino")
    assert "converted at each start" in caplog.text
    assert encoder.encode(TEXTS, 8).shape == (3, embedder.dimension)


class Unconvertible:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("this model has an operation OpenVINO lacks")


def test_auto_falls_back_to_torch_when_openvino_cannot_take_the_model(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(embedding_module, "OpenVinoEncoder", Unconvertible)
    with caplog.at_level(logging.WARNING, logger="index.embedding.embedder"):
        fallback = Embedder(EmbeddingSettings(runtime="auto", precision="fp32"))
    assert (fallback.runtime, fallback.arithmetic) == ("torch", "fp32")
    assert "OpenVINO could not run" in caplog.text and "operation OpenVINO lacks" in caplog.text
    assert fallback.embed(TEXTS).shape == (3, fallback.dimension)
    with pytest.raises(RuntimeError, match="operation OpenVINO lacks"):
        Embedder(EmbeddingSettings(runtime="openvino", precision="fp32"))  # asked for by name: no silent fallback


def test_openvino_sends_no_usage_reports(tmp_path: Path) -> None:
    """Importing openvino and converting a model would report usage to Google Analytics (and write a
    client id under ~/intel) unless told not to: a fresh home shows whether anything was set up."""
    script = textwrap.dedent("""
        import sys
        from index.config import EmbeddingSettings
        from index.embedding.embedder import Embedder
        embedder = Embedder(EmbeddingSettings(runtime="openvino"))
        assert embedder.runtime == "openvino", embedder.runtime
        print("telemetry module:", sys.modules.get("openvino_telemetry", "absent"))
    """)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(PROJECT)}
    env.pop("CI", None)  # openvino's own reports are off in CI runs: the test must not depend on that
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "telemetry module: None" in done.stdout
    assert not (home / "intel").exists()
    assert list((tmp_path / "cache").glob("news-answers-bot/openvino/*/model.xml"))


def test_threads_embedding_at_once_get_their_own_vectors(embedder: Embedder) -> None:
    texts = [f"Report number {i}: the council discussed {topic} for {i} minutes."
             for i, topic in enumerate(["roads", "schools", "parks", "water", "housing", "buses"] * 4)]
    alone = embedder.embed(texts, batch_size=4)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            mine = texts[worker::3]
            for _ in range(3):
                results[worker] = embedder.embed(mine, batch_size=2)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(worker,)) for worker in range(3)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    for worker in range(3):
        assert np.allclose(results[worker], alone[worker::3], atol=1e-3)
