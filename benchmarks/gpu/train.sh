#!/usr/bin/env bash
# Runs on a GPU machine, from the project root: trains the passage reranker and the answer-sentence
# scorer on all of SQuAD from the folder benchmarks/gpu/prepare.sh filled, and writes both files, in
# parts of at most 15 MiB (a device call returns no larger file), with their logs, to OUT.
# Join the parts with `cat reranker.safetensors.part-* > reranker.safetensors`.
# Usage: benchmarks/gpu/train.sh [CARRY_DIR] [OUT]; EPOCHS (default 2) and MINUTES (per model, default
# 3.5) bound the run, QUESTIONS (default 0: all) and DEVICE (default cuda) serve a rehearsal on a CPU.
# The machine needs Python (PYTHON, default python3) with torch, transformers and safetensors.
set -euo pipefail
carry=${1:-.device}
out=${2:-${OUT:?give OUT}}
epochs=${EPOCHS:-2}
minutes=${MINUTES:-3.5}
python=${PYTHON:-python3}
if ! "$python" -c "import sentencex" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$carry"/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi -L 2>/dev/null || true
common=(--negatives "$carry/negatives.jsonl.gz" --base-model "$carry/minilm" --device "${DEVICE:-cuda}"
        --questions "${QUESTIONS:-0}" --epochs "$epochs" --groups-per-batch 32 --max-minutes "$minutes")
failed=0  # one model failing does not stop the other: device time is scarce
"$python" -m index.search.train_reranker "$carry/squad" "$out/reranker.safetensors" "${common[@]}" \
  2>&1 | tee "$out/reranker.log" || failed=1
"$python" -m index.search.train_sentence_scorer "$carry/squad" "$out/sentence-scorer.safetensors" "${common[@]}" \
  --frozen-layers 0 2>&1 | tee "$out/sentence-scorer.log" || failed=1
shopt -s nullglob
for file in "$out"/*.safetensors; do
  split -b 15M -d "$file" "$file.part-" && rm "$file"
done
ls -la "$out"
exit "$failed"
