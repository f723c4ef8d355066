#!/usr/bin/env bash
# The one script a lent GPU machine runs, from bare, in one shot (≈ 4 minutes, at most 7½ by the step limits):
#   0. environment: the bundle's wheels installed (bench/bundle_install.py), then every input the later
#      steps read loaded once (tokenizer, corpus slice, GLUE RTE from the bundle's dataset card)
#   1. bench/speed.py at the BERT-base shape -> 6 layers, micro-batch 64, sequence 128, bf16: tokens/s
#      against the reference step (≥ 30 steps per side per round, one DataLoader), peak memory, MFU,
#      student inference at batch 1 and 32: the cheapest, most wanted figures first
#   2. pytest -m gpu (head training + distillation in bf16, kill-and-resume with CUDA RNG states, bf16 vs
#      fp32 loss, a small GLUE task, GPU latency, torch.compile)
#   3. a short real `distilflow prepare` + `teacher` + `distill` + `evaluate` through the CLI
# Each step has its own time limit and writes its result under $OUT as soon as it exists; the summary
# ($OUT/summary.txt) grows a line per step, so a step that hangs or a call that is cut still returns what
# finished. Files in $OUT (8, the device tool's limit): summary.txt env.log speed.log speed-gpu.json
# pytest.log pytest.xml cli.log distill.json.
#
# Prepare here:  bash bench/gpu_bundle.sh       Rehearse here (no GPU):  bash bench/gpu_rehearsal.sh
# Device tool:   run(command="bash bench/gpu_check.sh", carry=[".gpu_bundle"], timeout_s=540)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
BUNDLE=$PWD/.gpu_bundle
# A folder named site-packages: dill (datasets' fingerprints) pickles modules from anywhere else by value, and
# fails on pyarrow's ("Can't pickle <class 'MonthDayNano'>", found by bench/gpu_rehearsal.sh)
SITE=${SITE:-/tmp/bundle/site-packages}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DISTILFLOW_SHARED=$BUNDLE/shared DISTILFLOW_HUB_MIRROR=$BUNDLE/shared/hub
export PYTHONPATH=$SITE:$PWD

summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
FAILURES=0

step() {  # name, time limit in seconds, log file under $OUT, command...: runs it, adds its summary line
  local name=$1 limit=$2 log=$OUT/$3; shift 3
  local start=$SECONDS code verdict
  echo "== $name (limit $limit s, log $log)"
  # bash -c: a step may be one of the functions below (exported), which `timeout` cannot run itself
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >> "$log" 2>&1
  code=$?
  case $code in
    0) verdict="ok" ;;
    124|137) verdict="TIMED OUT at $limit s" ;;
    *) verdict="FAILED (exit $code)" ;;
  esac
  [ $code -eq 0 ] || FAILURES=$((FAILURES + 1))
  tr '\r' '\n' < "$log" | grep -v "it/s\]\|step/s\]\|s/step\]\|examples/s\]\|^$" | tail -n 12
  summary "$(printf '%-13s | %s, %d s' "$name" "$verdict" $((SECONDS - start)))"
  return $code
}

if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  MICRO=64 ROUNDS=3 STEPS=30 WORKERS=4 LATENCY_REPEATS=30 HEAD_STEPS=40 DISTILL_STEPS=60
else  # the rehearsal on a CPU machine: the same steps at a size a CPU finishes quickly; GPU tests skip
  DEVICE="no GPU ($(nproc) CPU cores)"
  MICRO=2 ROUNDS=1 STEPS=30 WORKERS=2 LATENCY_REPEATS=1 HEAD_STEPS=4 DISTILL_STEPS=6
fi
RUN=/tmp/gpu_cli
export OUT BUNDLE SITE RUN MICRO HEAD_STEPS DISTILL_STEPS
summary "gpu_check $(date -u +%FT%TZ) on ${DEVICE:-an unnamed GPU}, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

install_bundle() {
  python3 bench/bundle_install.py "$BUNDLE/wheels" "$SITE" || return 1
  python3 - <<'PY'
import os
import torch, transformers, datasets, pydantic, typer
from pathlib import Path
from transformers import AutoTokenizer
from distilflow.evaluation.glue_data import get_task, load_task
hub = Path(os.environ["DISTILFLOW_HUB_MIRROR"])
print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__,
      "| datasets", datasets.__version__, "| pydantic", pydantic.__version__, "| typer", typer.__version__)
tokenizer = AutoTokenizer.from_pretrained(hub / "sentence-transformers/all-MiniLM-L6-v2")
rte = load_task(get_task("rte"), str(hub / "nyu-mll/glue"))
corpus = Path(os.environ["DISTILFLOW_SHARED"]) / "data/corpus/brown/brown.txt"
print(f"tokenizer {len(tokenizer)} tokens | GLUE rte from the bundle: {len(rte['train'])} train, {len(rte[''])} dev rows"
      f" | corpus slice {corpus.stat().st_size:,} bytes")
PY
}
export -f install_bundle
step environment 120 env.log install_bundle || { summary "environment failed: nothing else can run (see env.log)"; exit 1; }
grep "^bundle: \|^torch \|^tokenizer " "$OUT/env.log" | tee -a "$OUT/summary.txt"

step bench 240 speed.log python3 bench/speed.py --shapes bert-base --micro-batch $MICRO --rounds $ROUNDS \
  --steps $STEPS --workers $WORKERS --tokenizer "$DISTILFLOW_HUB_MIRROR/sentence-transformers/all-MiniLM-L6-v2" --prepared /nonexistent \
  --corpus "$DISTILFLOW_SHARED"/data/corpus/brown/brown.txt "$DISTILFLOW_SHARED"/data/corpus/gutenberg/austen-emma.txt \
  --max-sequences 8000 --latency-repeats $LATENCY_REPEATS --out "$OUT/speed-gpu.json"
python3 - "$OUT/speed-gpu.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
def fmt(value, pattern):
    return "n/a" if value is None else pattern.format(value)
try:
    r = json.loads(open(sys.argv[1]).read())["shapes"]["bert-base"]
except Exception as error:
    sys.exit(print(f"  bench: no result ({type(error).__name__}: {error})"))
ours, ref = r["sides"]["distilflow"], r["sides"]["reference"]
print(f"  bert-base -> 6 layers, micro-batch {r['micro_batch']}, {r['timed_steps_per_side']} timed steps per side "
      f"({r['rounds']} rounds), one DataLoader with {r['data_workers']} workers")
print(f"  tokens/s {ours['median_tokens_per_second']:,.0f} vs reference {ref['median_tokens_per_second']:,.0f} "
      f"= {r['ratio']:.2f}x (goal >= 3x); rounds {', '.join(f'{x:.2f}' for x in r['round_ratios'])}")
print(f"  MFU {fmt(ours['mfu'], '{:.1%}')} vs {fmt(ref['mfu'], '{:.1%}')} (goal 40%); peak memory "
      f"{fmt(ours['peak_memory_gb'], '{:.1f}')} vs {fmt(ref['peak_memory_gb'], '{:.1f}')} GB = "
      f"{fmt(r.get('memory_ratio'), '{:.0%}')} (goal <= 50%); data wait {ours['data_wait_share']:.1%}")
print(f"  student inference speed-up b1 {r['inference']['b1']['speedup']:.2f}x, b32 {r['inference']['b32']['speedup']:.2f}x "
      f"(goal >= 1.9x); loss agreement {r['loss_agreement']['kd_all_relative_difference']:.1e}")
PY

step pytest-gpu 180 pytest.log python3 -m pytest -q -p no:cacheprovider tests/train/test_gpu.py -m gpu \
  -o addopts="-ra" --junitxml="$OUT/pytest.xml"
grep -E "passed|failed|skipped|error" "$OUT/pytest.log" | tail -1 | sed 's/^/  /' | tee -a "$OUT/summary.txt"

rm -rf "$RUN" && mkdir -p "$RUN"
cli_inputs() {  # a random head-less teacher at MiniLM's shape with the real tokenizer, and its params
  python3 - "$RUN" <<'PY' || return 1
import os, sys, torch
from pathlib import Path
from transformers import AutoTokenizer, BertConfig, BertModel
run = Path(sys.argv[1])
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
        glue: $RUN/glue, export: $RUN/export, metrics: $RUN/metrics}
tracking: {enabled: false}
YAML
}
cli_stages() {
  cli_inputs || return 1
  for command in prepare teacher distill; do
    echo "-- distilflow $command"
    python3 -m distilflow "$command" -p "$RUN/params.yaml" || return 1
  done
  echo "-- distilflow evaluate"
  python3 -m distilflow evaluate --model "$RUN/student" --teacher "$RUN/teacher" -p "$RUN/params.yaml" || return 1
  cp "$RUN/metrics/distill.json" "$OUT/"
}
export -f cli_inputs cli_stages
step cli 150 cli.log cli_stages
python3 -c "import json, sys; m = json.load(open(sys.argv[1])); print('  distill.json', {k: round(v, 4) for k, v in m.items()})" \
  "$OUT/distill.json" 2>/dev/null | tee -a "$OUT/summary.txt"

echo
echo "== summary ($OUT/summary.txt)"
cat "$OUT/summary.txt"
exit $((FAILURES > 0))
