#!/usr/bin/env bash
# The one script a lent GPU machine runs, from bare, in under 5 minutes:
#   1. pytest -m gpu (head training + distillation in bf16, kill-and-resume with CUDA RNG states,
#      bf16 vs fp32 loss, a small GLUE task, GPU latency, torch.compile)
#   2. bench/speed.py at the BERT-base shape (random weights), micro-batch 64, sequence length 128
#   3. a short real `distilflow prepare` + `teacher` + `distill` + `evaluate` through the CLI
#   4. a summary table as its last lines.
# Prepare here first:  bash bench/gpu_bundle.sh   (wheels, tokenizer, data slices -> .gpu_bundle/)
# Device tool:  run(command="bash bench/gpu_check.sh", carry=[".gpu_bundle"], timeout_s=420)
# Results are written to $OUT (or /tmp/gpu_check) : gpu_check.log, pytest.log, speed-gpu.json, cli.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
BUNDLE=$PWD/.gpu_bundle
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DISTILFLOW_SHARED=$BUNDLE/shared DISTILFLOW_HUB_MIRROR=$BUNDLE/shared/hub
exec > >(tee "$OUT/gpu_check.log") 2>&1

if python3 -c "import datasets, pydantic, typer" 2>/dev/null; then
  export PYTHONPATH=$PWD   # a development machine: everything is installed already
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$BUNDLE"/wheels/*.whl || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
fi
# Without a GPU (a dry run on a CPU machine) the same steps run at a size a CPU finishes quickly.
if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  MICRO=64 ROUNDS=3 STEPS=5 HEAD_STEPS=40 DISTILL_STEPS=60
else
  echo "no CUDA GPU: dry run at CPU size (GPU tests skip)"
  MICRO=8 ROUNDS=1 STEPS=1 HEAD_STEPS=4 DISTILL_STEPS=6
fi
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"
python3 -c "import torch, transformers, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__)"

declare -A status
timed() {  # name, command...: runs it, records exit code and seconds
  local name=$1; shift
  local start=$SECONDS
  "$@"; local code=$?
  status[$name]="exit $code, $((SECONDS - start)) s"
}

echo "== 1. pytest -m gpu"
timed pytest python3 -m pytest -q -p no:cacheprovider tests/train/test_gpu.py -m gpu -o addopts="-ra" \
  --junitxml="$OUT/pytest.xml" > "$OUT/pytest.log" 2>&1
tail -25 "$OUT/pytest.log"

echo "== 2. bench: BERT-base shape -> 6 layers, micro-batch 64, bf16 autocast on both sides"
timed bench python3 bench/speed.py --shapes bert-base --micro-batch $MICRO --rounds $ROUNDS --steps $STEPS \
  --tokenizer "$DISTILFLOW_HUB_MIRROR/sentence-transformers/all-MiniLM-L6-v2" --prepared /nonexistent \
  --corpus "$DISTILFLOW_SHARED"/data/corpus/brown/brown.txt "$DISTILFLOW_SHARED"/data/corpus/gutenberg/austen-emma.txt \
  --out "$OUT/speed-gpu.json"

echo "== 3. CLI: distilflow prepare + teacher + distill + evaluate (random head-less teacher at MiniLM's shape, real tokenizer)"
RUN=/tmp/gpu_cli && rm -rf "$RUN" && mkdir -p "$RUN"
python3 - "$RUN" <<'PY'
import sys, torch
from pathlib import Path
from transformers import AutoTokenizer, BertConfig, BertModel
run = Path(sys.argv[1]); import os
tokenizer = AutoTokenizer.from_pretrained(Path(os.environ["DISTILFLOW_HUB_MIRROR"]) / "sentence-transformers/all-MiniLM-L6-v2")
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536)).save_pretrained(run / "teacher_in")
tokenizer.save_pretrained(run / "teacher_in")
PY
cat > "$RUN/params.yaml" <<YAML
teacher: {model: $RUN/teacher_in}
data:
  train: {files: ["$DISTILFLOW_SHARED/data/corpus/brown/brown.txt", "$DISTILFLOW_SHARED/data/corpus/gutenberg/*.txt"]}
  test: {files: ["$DISTILFLOW_SHARED/data/corpus/wikitext-2-raw/wiki.test.raw"]}
  max_seq_length: 128
  max_test_sequences: 256
head:
  unfreeze_top_layers: 6
  train: {max_steps: $HEAD_STEPS, micro_batch_size: $MICRO, gradient_accumulation_steps: 1, learning_rate: 0.0003,
          eval_every: 20, eval_sequences: 256, checkpoint_every: 20, data_workers: 2}
student: {n_layers: 3}
distill:
  train: {max_steps: $DISTILL_STEPS, micro_batch_size: $MICRO, gradient_accumulation_steps: 2, eval_every: 30,
          checkpoint_every: 20, log_every: 10, data_workers: 2, group_by_length: true}
paths: {prepared: $RUN/prepared, teacher: $RUN/teacher, student: $RUN/student, checkpoints: $RUN/checkpoints,
        glue: $RUN/glue, metrics: $RUN/metrics}
tracking: {enabled: false}
YAML
timed cli_prepare python3 -m distilflow prepare -p "$RUN/params.yaml" > "$OUT/cli.log" 2>&1
timed cli_head python3 -m distilflow teacher -p "$RUN/params.yaml" >> "$OUT/cli.log" 2>&1
timed cli_distill python3 -m distilflow distill -p "$RUN/params.yaml" >> "$OUT/cli.log" 2>&1
timed cli_evaluate python3 -m distilflow evaluate --model "$RUN/student" --teacher "$RUN/teacher" \
  -p "$RUN/params.yaml" >> "$OUT/cli.log" 2>&1
tr '\r' '\n' < "$OUT/cli.log" | grep -v "it/s\]\|step/s\]\|s/step\]\|examples/s\]\|^$" | tail -30
cp "$RUN/metrics/distill.json" "$OUT/" 2>/dev/null

echo "== summary ($(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo CPU))"
python3 - "$OUT" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
try:
    suite = ET.parse(out / "pytest.xml").getroot().find("testsuite") or ET.parse(out / "pytest.xml").getroot()
    n, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    print(f"pytest -m gpu      | {n - f - e - s} passed, {f + e} failed, {s} skipped")
except Exception as error:
    print(f"pytest -m gpu      | no result ({error})")
def fmt(value, pattern):
    return "n/a" if value is None else pattern.format(value)
try:
    r = json.loads((out / "speed-gpu.json").read_text())["shapes"]["bert-base"]
    ours, ref = r["sides"]["distilflow"], r["sides"]["reference"]
    print(f"bench bert-base    | micro-batch {r['micro_batch']}: {ours['median_tokens_per_second']:,.0f} vs "
          f"{ref['median_tokens_per_second']:,.0f} tok/s = {r['ratio']:.2f}x (goal >= 3x); "
          f"MFU {fmt(ours['mfu'], '{:.1%}')} vs {fmt(ref['mfu'], '{:.1%}')} (goal >= 40%); peak memory "
          f"{fmt(ours['peak_memory_gb'], '{:.1f}')} vs {fmt(ref['peak_memory_gb'], '{:.1f}')} GB = "
          f"{fmt(r.get('memory_ratio'), '{:.0%}')} (goal <= 50%); data wait {ours['data_wait_share']:.1%}; "
          f"student inference b32 {r['inference']['b32']['speedup']:.2f}x (goal >= 1.9x); "
          f"loss diff {r['loss_agreement']['kd_all_relative_difference']:.1e}")
except Exception as error:
    print(f"bench bert-base    | no result ({error})")
try:
    print("distill.json       |", json.dumps({k: round(v, 4) for k, v in json.loads((out / "distill.json").read_text()).items()}))
except Exception as error:
    print(f"distill.json       | no result ({error})")
PY
for name in pytest bench cli_head cli_distill cli_evaluate; do printf '%-18s | %s\n' "$name" "${status[$name]:-not run}"; done
