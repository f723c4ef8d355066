#!/usr/bin/env bash
# A rehearsal of the one GPU shot (bench/gpu/check.sh) on this CPU machine, so that it works the first time:
#   1. an environment like the GPU image's (bench/gpu/check.sh's header says what the image has): its
#      transformers 5.17, accelerate, onnx, scikit-learn, ...; pyarrow, fsspec and typer of its own; no
#      mlflow, prefect, dvc, datasets or pydantic but what the bundle carries. Two differences, both forced:
#      Python 3.11 with the local torch 2.13 CPU wheel (the image: 3.12, torch 2.11 + CUDA; no torch for
#      3.12 installs here without GBs of CUDA), hence numpy 2.4.6 (numpy 2.5 needs Python >= 3.12);
#   2. a bundle of its own, built for Python 3.11 in $HERE/bundle (bench/gpu/bundle.sh 3.11, which also checks
#      that every cp312 wheel of the real bundle downloads), installed exactly as check.sh installs it.
#      .gpu_bundle, the image's bundle that travels, is never touched: prepare and rehearse in either order;
#   3. check.sh end to end, its preflight first: on the CPU it runs the GPU's code paths (bf16 autocast,
#      the teacher stored in bf16, fused AdamW, torch.compile with inductor) at tiny sizes, and
#      `pytest -m gpu` runs the GPU tests on the CPU less what only CUDA has (its RNG, memory, host syncs).
# The image-like pyarrow is 23.0.1 (too old for datasets 5.2: the carried wheel must go in) and fsspec and
# typer satisfy the carried packages (the image's must be used): both branches of bench/gpu/bundle_install.py run.
#
#     bash bench/gpu/rehearsal.sh        # ≈ 6 min the first time (the environment), ≈ 3 min after
# Run it whenever bench/ or the bundle changes; its summary goes into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=${REHEARSAL_DIR:-/tmp/gpu_rehearsal}
ENV=$HERE/env
PACKAGES="torch==2.13.0 transformers==5.17.0 tokenizers==0.23.2 huggingface_hub==1.33.0 accelerate==1.15.0
          safetensors==0.8.0 numpy==2.4.6 onnx==1.23.1 onnxruntime==1.30.0 onnxscript==0.7.2 pandas scikit-learn
          scipy matplotlib pyyaml tqdm filelock requests psutil rich shellingham annotated-doc xxhash packaging
          pytest hypothesis pyarrow==23.0.1 fsspec==2026.9.0"

if [ ! -f "$ENV/.ready" ]; then
  rm -rf "$ENV" && python3.11 -m venv "$ENV"
  "$ENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # shellcheck disable=SC2086
  "$ENV/bin/pip" install -q $PACKAGES 2>&1 | grep -v "^WARNING: Location" || true
  "$ENV/bin/pip" install -q typer==0.29.2 2>&1 | grep -v "^WARNING: Location" || true
  # transformers pulls in typer, and typer 0.29 pydantic; the image has neither pydantic nor its parts
  "$ENV/bin/pip" uninstall -q -y pydantic pydantic-core annotated-types typing-inspection
  touch "$ENV/.ready"
fi
for absent in mlflow prefect dvc datasets pydantic; do
  if "$ENV/bin/python" -c "import $absent" 2>/dev/null; then
    echo "gpu_rehearsal: $absent is importable in $ENV, unlike on the GPU image: remove $ENV and run again" >&2
    exit 1
  fi
done

BUNDLE=$HERE/bundle PYTHON=$ENV/bin/python bash bench/gpu/bundle.sh 3.11
rm -rf "$HERE/site" "$HERE/out" "$HERE/inductor"
# A bare machine compiles from nothing: no inductor cache from an earlier rehearsal
export TORCHINDUCTOR_CACHE_DIR=$HERE/inductor
OUT=$HERE/out BUNDLE=$HERE/bundle SITE=$HERE/site/site-packages PATH=$ENV/bin:$PATH bash bench/gpu/check.sh
echo "(rehearsal: $("$ENV/bin/python" --version), $ENV; results in $HERE/out)"
