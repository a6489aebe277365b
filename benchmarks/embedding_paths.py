"""Embedding paths compared: throughput, agreement with fp32 and answer-recall on a QA set.

    .venv/bin/python benchmarks/embedding_paths.py DATASET_DIR [--passages 512] [--repeats 3]
        [--paths fp32 bf16 openvino-fp32 openvino-bf16 openvino-int8 onnx-int8] [--eval] [--cache-dir DIR]
        [--questions N]

DATASET_DIR holds corpus.jsonl and questions.jsonl (the RealTimeQA set of `python -m index eval`).
Paths:
- fp32: the Embedder with embedding.runtime = "torch", precision = "fp32" (sentence-transformers' encode);
- bf16: the same with precision = "bf16" (the whole torch model in bfloat16);
- openvino-fp32, openvino-bf16: the Embedder with embedding.runtime = "openvino" (the model converted
  for OpenVINO's CPU plugin, index/embedding/openvino.py) at each precision;
- openvino-int8: the OpenVINO model of the openvino paths quantised to int8 (weights and activations)
  by nncf's post-training quantisation (model_type TRANSFORMER), calibrated on 300 passages of the
  corpus's last articles (not those timed), the rest in bf16 where the CPU has bf16 units. Only when nncf can be
  imported: not a project dependency (`.venv/bin/pip install nncf` for this benchmark).
- onnx-int8: the bundled weights exported here with torch.onnx.export (into a temporary folder),
  MatMul weights quantised to int8 per channel by onnxruntime.quantization.quantize_dynamic, run by
  onnxruntime with as many threads as torch uses. Only when onnxruntime (and onnx) can be imported:
  they are not project dependencies (`.venv/bin/pip install onnxruntime onnx` for this benchmark).

1. Throughput: the same --passages passages (our Chunker's passages, title prefix included, of
   articles spread over the corpus) encoded by each path in turn, --repeats times round-robin;
   median tokens/s and passages/s, and each path's ratio to fp32 from this run.
2. Agreement: cosine of each passage's vector to its fp32 vector (min and median).
3. With --eval: for each path a library of the whole corpus is built in a temporary folder and
   every question asked, as `python -m index eval` does (index/eval/evaluate.py's evaluate and summarize),
   giving answer-recall@1/3/10 and MRR@10. Each path caches its vectors in its own file under
   --cache-dir (default ~/.cache/news-answers-bot/paths), so no path reads another's vectors and a
   rerun is quick.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

# Paths run by the project's Embedder: (embedding.runtime, embedding.precision).
EMBEDDER_PATHS = {"fp32": ("torch", "fp32"), "bf16": ("torch", "bf16"),
                  "openvino-fp32": ("openvino", "fp32"), "openvino-bf16": ("openvino", "bf16")}


class OpenVinoInt8Embedder:
    """The project's Embedder with its OpenVINO model swapped for an nncf int8 quantisation of it."""

    precision = "openvino-int8"
    arithmetic = "openvino-int8"

    def __init__(self, base, calibration: Sequence[str]) -> None:
        from index.embedding.openvino import import_openvino

        openvino = import_openvino()  # first: nncf would otherwise load openvino's usage reporting
        import nncf

        started = time.perf_counter()
        encoder = copy.copy(base._encoder)  # the OpenVINO encoder: its tokenising and batching reused
        inputs = encoder._inputs
        batches = [base._model.preprocess(list(calibration[i:i + 16])) for i in range(0, len(calibration), 16)]
        dataset = nncf.Dataset(batches, lambda f: {name: f[name].numpy() for name in inputs})
        quantised = nncf.quantize(encoder._convert(), dataset, model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(batches))
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if base.settings.threads > 0:
            config["INFERENCE_NUM_THREADS"] = base.settings.threads
        encoder._compiled = openvino.Core().compile_model(quantised, "CPU", config)
        encoder._request = encoder._compiled.create_infer_request()
        encoder._lock = threading.Lock()
        self.quantise_seconds = time.perf_counter() - started
        self.name, self.dimension, self.max_seq_length = base.name, base.dimension, base.max_seq_length
        self.passage_window = base.passage_window
        self.settings, self.count_tokens, self._encoder = base.settings, base.count_tokens, encoder

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        from index.embedding.embedder import normalize_rows

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(self._encoder.encode(texts, batch_size or self.settings.batch_size, show_progress))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]  # the bundled model, which has no prompts

    embed_one = embed_query


class OnnxInt8Embedder:
    """The Embedder interface over an int8 ONNX export of the bundled model run by onnxruntime."""

    precision = "onnx-int8"

    def __init__(self, base, work_dir: Path, threads: int) -> None:
        import onnxruntime
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel

        from index.embedding.embedder import resolve_model

        self.name, self.dimension, self.max_seq_length = base.name, base.dimension, base.max_seq_length
        self.passage_window = base.passage_window
        self.settings = base.settings
        self.count_tokens = base.count_tokens
        self._tokenizer = base._tokenizer
        started = time.perf_counter()
        model = AutoModel.from_pretrained(resolve_model(base.settings.model), attn_implementation="eager").eval()

        class Pooled(torch.nn.Module):
            """Token embeddings mean-pooled over the attention mask (the model's own pooling)."""

            def __init__(self, bert) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
                # an additive mask built here, so that the traced graph has no shape-dependent branches
                additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
                tokens = self.bert.encoder(hidden, attention_mask=additive).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
                return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        example = self._tokenizer(["an example sentence", "another"], padding=True, return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        fp32_file, int8_file = work_dir / "model.onnx", work_dir / "model_int8.onnx"
        axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"embedding": {0: "batch"}}
        torch.onnx.export(Pooled(model).eval(), tuple(example[n] for n in names), str(fp32_file), dynamo=False,
                          input_names=names, output_names=["embedding"], dynamic_axes=axes, opset_version=17)
        quantize_dynamic(str(fp32_file), str(int8_file), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(int8_file), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.export_seconds = time.perf_counter() - started

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        from index.embedding.embedder import normalize_rows

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # as sentence-transformers batches
        size = batch_size or self.settings.batch_size
        for first in range(0, len(texts), size):
            rows = order[first:first + size]
            encoded = self._tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                      max_length=self.max_seq_length, return_tensors="np")
            feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in self._inputs}
            out[rows] = self._session.run(None, feed)[0]
        return normalize_rows(out)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]  # the bundled model, which has no prompts

    embed_one = embed_query


def sample_passages(corpus: Path, count: int, embedder, last: bool = False) -> list[str]:
    """``count`` passages (embedding inputs) of articles spread over the corpus (``last``: of its last
    articles instead, which the spread sample does not reach first)."""
    from index.config import load_settings
    from index.ingest.chunking import Chunker, embedding_input

    chunking = load_settings().chunking
    chunker = Chunker(embedder.count_tokens, chunking.max_tokens, chunking.overlap_tokens, embedder.max_seq_length,
                      chunking.title_prefix)
    with open(corpus, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    passages: list[str] = []
    if last:
        rows = rows[::-1]
    step = 1 if last else max(1, len(rows) // max(1, count // 12))  # ~12 passages an article
    for offset in range(step):
        for row in rows[offset::step]:
            title = (row.get("title") or "").strip() or "Untitled"
            passages += [embedding_input(title, p.text, chunking.title_prefix) for p in chunker.chunk(title, row["text"])]
            if len(passages) >= count:
                return passages[:count]
    return passages


def recall(dataset: Path, settings, embedder, work: Path, question_limit: int) -> dict[str, float]:
    """Answer-recall of the QA set on a library of the whole corpus built with this embedder."""
    from index.eval.evaluate import evaluate, load_corpus, load_questions, summarize
    from index.library import Library

    drafts = load_corpus(dataset / "corpus.jsonl")
    questions = load_questions(dataset / "questions.jsonl")[: question_limit or None]
    started = time.perf_counter()
    library = Library(settings.replace("library", data_dir=work), embedder=embedder, reranker=False)
    with library:
        statuses: dict[str, int] = {}
        for result in library.add_drafts(drafts, added_by="eval"):
            statuses[result.status] = statuses.get(result.status, 0) + 1
        build = time.perf_counter() - started
        passages = library.store.count_passages()
        results = evaluate(library.searcher, questions)
    row = summarize(results)
    row["build s"] = build
    row["median question ms"] = statistics.median(r.milliseconds for r in results)
    print(f"  built {len(drafts)} articles ({statuses}), {passages} passages in {build:.0f} s;"
          f" {len(questions)} questions", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--passages", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=["fp32", "bf16", "openvino-bf16", "onnx-int8"])
    parser.add_argument("--eval", action="store_true", help="also answer-recall on the QA set, per path")
    parser.add_argument("--questions", type=int, default=0, help="ask only the first N questions (0: all)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "news-answers-bot" / "paths")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from index.config import load_settings
    from index.embedding.cache import CachedEmbedder
    from index.embedding.embedder import Embedder, cpu_flags
    from index.embedding.openvino import import_openvino

    corpus = args.dataset / "corpus.jsonl"
    if not corpus.exists():
        print(f"error: {corpus} does not exist", file=sys.stderr)
        return 2
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="embedding-paths-") as tmp:
        work = Path(tmp)
        embedders = {}
        for path in args.paths:
            if path in EMBEDDER_PATHS:
                runtime, precision = EMBEDDER_PATHS[path]
                embedders[path] = Embedder(dataclasses.replace(settings.embedding, runtime=runtime, precision=precision))
            elif path == "openvino-int8":
                import_openvino()  # before nncf, which would otherwise load openvino's usage reporting
                try:
                    import nncf  # noqa: F401
                except ImportError:
                    print("openvino-int8 skipped: nncf is not installed (pip install nncf)")
                    continue
                base = Embedder(dataclasses.replace(settings.embedding, runtime="openvino", precision="auto"))
                calibration = sample_passages(corpus, 300, base, last=True)
                embedders[path] = OpenVinoInt8Embedder(base, calibration)
                print(f"openvino-int8: quantised in {embedders[path].quantise_seconds:.1f} s")
            elif path == "onnx-int8":
                try:
                    import onnxruntime  # noqa: F401
                except ImportError:
                    print("onnx-int8 skipped: onnxruntime is not installed (pip install onnxruntime onnx)")
                    continue
                base = embedders.get("fp32") or Embedder(settings.embedding)
                (work / "onnx").mkdir()
                embedders[path] = OnnxInt8Embedder(base, work / "onnx", torch.get_num_threads())
                print(f"onnx-int8: exported and quantised in {embedders[path].export_seconds:.1f} s")
            else:
                print(f"unknown path {path!r}: choose from {', '.join(EMBEDDER_PATHS)}, openvino-int8, onnx-int8",
                      file=sys.stderr)
                return 2
        if "fp32" not in embedders:
            print("the fp32 path is the reference: include it in --paths", file=sys.stderr)
            return 2
        reference = embedders["fp32"]
        passages = sample_passages(corpus, args.passages, reference)
        tokens = sum(reference.count_tokens(passages)) + 2 * len(passages)
        bf16_flags = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512_vnni", "amx_int8"})
        print(f"{len(passages)} passages, {tokens} tokens (with [CLS]/[SEP]); batch_size"
              f" {settings.embedding.batch_size}; torch threads {torch.get_num_threads()}; CPU flags {bf16_flags};"
              f" {args.repeats} repeats round-robin, medians")
        for embedder in embedders.values():  # warm-up
            embedder.embed(passages[:16])
        seconds: dict[str, list[float]] = {name: [] for name in embedders}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, embedder in embedders.items():
                started = time.perf_counter()
                vectors[name] = embedder.embed(passages)
                seconds[name].append(time.perf_counter() - started)
        rows: dict[str, dict[str, float]] = {}
        for name in embedders:
            median = statistics.median(seconds[name])
            cosine = np.sum(vectors[name] * vectors["fp32"], axis=1)
            rows[name] = {"tokens/s": tokens / median, "passages/s": len(passages) / median,
                          "cos min": float(cosine.min()), "cos median": float(np.median(cosine))}
            print(f"  {name}: {', '.join(f'{s:.2f}' for s in seconds[name])} s", flush=True)

        if args.eval:
            for name, embedder in embedders.items():
                print(f"answer-recall with {name}:", flush=True)
                cache = CachedEmbedder(embedder, args.cache_dir / name / "embeddings.sqlite3")
                try:
                    rows[name] |= recall(args.dataset, settings, cache, work / f"library-{name}", args.questions)
                finally:
                    cache.close()
                print(f"  cache: {cache.hits} hits, {cache.misses} misses", flush=True)

    base = rows["fp32"]
    columns = ["tokens/s", "passages/s", "speed ×fp32", "cos min", "cos median"]
    if args.eval:
        columns += ["R@1", "R@3", "R@10", "MRR@10", "ΔR@3 pts", "build s", "median question ms"]
    print()
    print(f"{'path':<11}" + "".join(f"{c:>{max(10, len(c) + 2)}}" for c in columns))
    for name, row in rows.items():
        row["speed ×fp32"] = row["tokens/s"] / base["tokens/s"]
        if args.eval:
            row["ΔR@3 pts"] = 100 * (row["R@3"] - base["R@3"])
        cells = []
        for c in columns:
            width = max(10, len(c) + 2)
            value = row[c]
            text = f"{value:.0f}" if c in ("tokens/s", "build s") else f"{value:.1f}" if c in (
                "passages/s", "ΔR@3 pts", "median question ms") else f"{value:.2f}" if c == "speed ×fp32" \
                else f"{value:.5f}" if c.startswith("cos") else f"{value:.3f}"
            cells.append(f"{text:>{width}}")
        print(f"{name:<11}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
