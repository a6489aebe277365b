"""Hard negatives mined with the project's own hybrid search, and the trainers run from them the way a
GPU machine runs them: as modules of their own, from a copy of the base model, over several epochs."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.config import RerankerSettings, SentenceSettings
from index.search.reranker import load_reranker
from index.search.sentence_scorer import load_sentence_scorer
from index.search.train_reranker import load_split, read_mined
from tests.support.helpers import PROJECT, run_cli, write_squad_paragraphs


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the tiny SQuAD folder, the file `python -m index mine-negatives` wrote for it)."""
    work = tmp_path_factory.mktemp("mined")
    write_squad_paragraphs(work / "squad")
    out = work / "negatives.jsonl.gz"
    result = run_cli("mine-negatives", str(work / "squad"), str(out), "--per-question", "4",
                     "--cache-dir", str(work / "cache"), data_dir=work / "data")
    assert result.returncode == 0, result.stderr
    return work / "squad", out


@pytest.fixture(scope="module")
def base_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fp16 copy of the bundled model, as benchmarks/gpu/prepare.sh makes it."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from index.search.reranker import base_model_path

    folder = tmp_path_factory.mktemp("minilm")
    AutoModel.from_pretrained(base_model_path(), dtype=torch.float32).half().save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_model_path()).save_pretrained(folder)
    return folder


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_each_question_gets_other_paragraphs_best_first(mined: tuple[Path, Path]) -> None:
    squad, out = mined
    passages, questions = load_split(squad, "train-v1.0")
    found = read_mined(out, questions)
    assert set(found) == set(range(len(questions)))
    for number, question in enumerate(questions):
        assert question.passage_id not in found[number]
        assert 0 < len(found[number]) <= 4 and set(found[number]) <= set(passages)
        # the other paragraph of the same topic (another town) is the closest one the search finds
        twin = (question.passage_id + 6) % 12
        assert found[number][0] == twin, (question.question, found[number])


def test_a_file_mined_from_other_questions_is_refused(mined: tuple[Path, Path], tmp_path: Path) -> None:
    squad, out = mined
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows[0]["text"] = "A question this data set does not have?"
    other = tmp_path / "other.jsonl.gz"
    with gzip.open(other, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    result = run_module("index.search.train_reranker", str(squad), str(tmp_path / "r.safetensors"),
                        "--negatives", str(other), "--device", "cpu")
    assert result.returncode == 2
    assert "mined from other SQuAD questions" in result.stderr and "Traceback" not in result.stderr
    missing = run_module("index.search.train_reranker", str(squad), str(tmp_path / "r.safetensors"),
                         "--negatives", str(tmp_path / "nowhere.jsonl.gz"))
    assert missing.returncode == 2 and "nowhere.jsonl.gz not found" in missing.stderr


def test_both_trainers_run_as_modules_from_mined_negatives_and_a_base_copy(
        mined: tuple[Path, Path], base_copy: Path, tmp_path: Path) -> None:
    squad, negatives = mined
    common = ["--negatives", str(negatives), "--base-model", str(base_copy), "--device", "cpu", "--questions", "0",
              "--epochs", "2", "--groups-per-batch", "4", "--max-length", "64"]
    reranker_file, scorer_file = tmp_path / "reranker.safetensors", tmp_path / "scorer.safetensors"
    # two processes tokenize the batches ahead, as beside a GPU
    trained = run_module("index.search.train_reranker", str(squad), str(reranker_file), *common,
                         "--calibration-questions", "6", "--loader-workers", "2")
    assert trained.returncode == 0, trained.stderr
    assert "(epoch 2)" in trained.stderr
    reranker = load_reranker(RerankerSettings(model=str(reranker_file)))
    assert reranker is not None
    training = reranker.info.training
    # every answerable question, twice over: 12 groups of 4 in 3 steps per epoch
    assert (training["groups"], training["steps"], training["epochs"], training["device"]) == (24, 6, 2, "cpu")
    scored = run_module("index.search.train_sentence_scorer", str(squad), str(scorer_file), *common,
                        "--check-questions", "6")
    assert scored.returncode == 0, scored.stderr
    scorer = load_sentence_scorer(SentenceSettings(scorer=str(scorer_file)))
    assert scorer is not None
    assert scorer._model.info.training["epochs"] == 2 and scorer._model.info.training["steps"] == 6


def test_a_damaged_mined_file_gets_a_clear_message(mined: tuple[Path, Path], tmp_path: Path) -> None:
    squad, out = mined
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(out.read_bytes()[:40])  # cut short inside the gzip stream
    result = run_module("index.search.train_sentence_scorer", str(squad), str(tmp_path / "s.safetensors"),
                        "--negatives", str(damaged), "--device", "cpu")
    assert result.returncode == 2, result.stderr
    assert "is not a readable file of `python -m index mine-negatives`" in result.stderr
    assert "Traceback" not in result.stderr
