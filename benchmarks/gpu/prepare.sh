#!/usr/bin/env bash
# Fills .device/, the folder that travels to a GPU machine for benchmarks/gpu/train.sh (run it from the
# project root; .gitignore keeps the folder out of commits, so a device call must carry it):
#   - SQuAD's four files;
#   - the hard negatives of `python -m index mine-negatives` (NEGATIVES);
#   - an fp16 copy of the bundled all-MiniLM-L6-v2 (the machine lacks the package; fp32 does not fit
#     the 64 MiB a call may carry; training reads it back as fp32);
#   - sentencex for CPython 3.12, the one package of the trainers the machine lacks (pip fetches it).
# Usage: benchmarks/gpu/prepare.sh SQUAD_DIR NEGATIVES
set -euo pipefail
squad=${1:?usage: benchmarks/gpu/prepare.sh SQUAD_DIR NEGATIVES}
negatives=${2:?usage: benchmarks/gpu/prepare.sh SQUAD_DIR NEGATIVES}
python=${PYTHON:-.venv/bin/python}
carry=.device
rm -rf "$carry" && mkdir -p "$carry/squad"
for name in train-v1.0.passages train-v1.0.questions dev-v2.0.passages dev-v2.0.questions; do
  cp "$squad/$name.jsonl.gz" "$carry/squad/"
done
cp "$negatives" "$carry/negatives.jsonl.gz"
"$python" - "$carry/minilm" <<'PY'
import sys
import torch
from transformers import AutoModel, AutoTokenizer
from index.search.reranker import base_model_path
model = AutoModel.from_pretrained(base_model_path(), dtype=torch.float32)
model.half().save_pretrained(sys.argv[1])
AutoTokenizer.from_pretrained(base_model_path()).save_pretrained(sys.argv[1])
PY
version=$("$python" -c "import importlib.metadata as m; print(m.version('sentencex'))")
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$carry" "sentencex==$version"
du -sh "$carry"
