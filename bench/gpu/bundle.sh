#!/usr/bin/env bash
# Builds .gpu_bundle/ (git-ignored): what bench/gpu/check.sh needs on a bare GPU machine that has torch,
# transformers and accelerate but no package index and no ../shared: wheels of the packages the core needs
# and the image lacks, the MiniLM tokenizer (no weights: the check uses random teachers of real shapes), a
# slice of the corpus, and GLUE RTE with the dataset card whose `configs:` tell load_dataset what "rte" is.
#
#     bash bench/gpu/bundle.sh                                  # .gpu_bundle, for the GPU image (Python 3.12)
#     BUNDLE=/tmp/gpu_rehearsal/bundle bash bench/gpu/bundle.sh 3.11   # what bench/gpu/rehearsal.sh does
#
# Every wheel must download (a missing one stops the build here, not the check on the GPU). Building for
# another Python also checks that the GPU image's cp312 wheels download; only a build for the image may
# write .gpu_bundle, the folder that travels (a rehearsal's bundle in it would be refused on the device).
# The image's bundle is then checked against the image's facts (bench/gpu/preflight.py --image), and what
# travels (the working tree plus this bundle) is printed and refused above 62 MiB (the tool takes 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON_VERSION=${1:-3.12}
SHARED=${SHARED:-../shared}
BUNDLE=${BUNDLE:-.gpu_bundle}
if [ "$PYTHON_VERSION" != 3.12 ] && [ "$(realpath -m "$BUNDLE")" = "$(realpath -m .gpu_bundle)" ]; then
  echo "gpu_bundle: a bundle for Python $PYTHON_VERSION would replace .gpu_bundle, the GPU image's (3.12): set BUNDLE to another folder" >&2
  exit 2
fi
LIMIT_BYTES=$((62 * 1024 * 1024))

# The core's imports the GPU image lacks, at the versions pyproject.toml pins (datasets' own needs included)
REQUIRED="datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.13.4 pydantic-core==2.46.4
          annotated-types==0.8.0 typing-inspection==0.4.5"
# The image has these; check.sh installs the carried wheel only where the image's version does not
# satisfy what the carried packages need (bench/gpu/bundle_install.py says which, on the device)
IMAGE_HAS="pyarrow==25.0.1 fsspec==2026.9.0 typer==0.29.1"

download() {  # python version, target folder, packages...: all of them or a failed build
  local version=$1 target=$2; shift 2
  local log
  log=$(mktemp)
  if ! python3 -m pip download --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$target" "$@" > "$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" | tail -5 >&2
    echo "gpu_bundle: a wheel for Python $version did not download (above): nothing was built" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if [ -e "$BUNDLE" ] && [ ! -d "$BUNDLE/wheels" ] && [ -n "$(ls -A "$BUNDLE" 2>/dev/null)" ]; then
  echo "gpu_bundle: $BUNDLE exists and is not a bundle this script wrote: set BUNDLE to a new folder" >&2
  exit 2
fi
rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels"
# shellcheck disable=SC2086
download "$PYTHON_VERSION" "$BUNDLE/wheels" $REQUIRED $IMAGE_HAS
if [ "$PYTHON_VERSION" != 3.12 ]; then  # a rehearsal: the real bundle's wheels must exist too
  check=$(mktemp -d)
  # shellcheck disable=SC2086
  download 3.12 "$check" $REQUIRED $IMAGE_HAS
  echo "the GPU image's cp312 wheels download too ($(ls "$check" | wc -l) files)"
  rm -rf "$check"
fi

MINILM=hub/sentence-transformers/all-MiniLM-L6-v2
GLUE=hub/nyu-mll/glue
mkdir -p "$BUNDLE/shared/$MINILM" "$BUNDLE/shared/data/corpus"/{gutenberg,brown,wikitext-2-raw} "$BUNDLE/shared/$GLUE/rte"
cp "$SHARED/$MINILM"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} \
   "$BUNDLE/shared/$MINILM/"
head -c 1000000 "$SHARED/data/corpus/gutenberg/austen-emma.txt" > "$BUNDLE/shared/data/corpus/gutenberg/austen-emma.txt"
head -c 1000000 "$SHARED/data/corpus/brown/brown.txt" > "$BUNDLE/shared/data/corpus/brown/brown.txt"
head -n 2000 "$SHARED/data/corpus/wikitext-2-raw/wiki.test.raw" > "$BUNDLE/shared/data/corpus/wikitext-2-raw/wiki.test.raw"
cp "$SHARED/$GLUE/rte"/*.parquet "$BUNDLE/shared/$GLUE/rte/"
# The dataset card's `configs:` tell load_dataset(folder, "rte") which files are "rte"; the full card names
# every task, whose files the bundle leaves out ("No (supported) data files found"): name RTE alone.
cat > "$BUNDLE/shared/$GLUE/README.md" <<'CARD'
---
configs:
- config_name: rte
  data_files:
  - split: train
    path: rte/train-*
  - split: validation
    path: rte/validation-*
dataset_info:
- config_name: rte
  features:
  - name: sentence1
    dtype: string
  - name: sentence2
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': entailment
          '1': not_entailment
  - name: idx
    dtype: int32
---
GLUE RTE, cut from nyu-mll/glue for bench/gpu/check.sh.
CARD

if [ "$PYTHON_VERSION" != 3.12 ]; then
  echo "bundle for Python $PYTHON_VERSION in $BUNDLE (a rehearsal's: it does not travel)"
  exit 0
fi
"${PYTHON:-python3}" bench/gpu/preflight.py "$BUNDLE" --image

# What the device tool sends: tracked files, untracked files git does not ignore, and the carried bundle.
tree_bytes=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r stat -c %s -- 2>/dev/null \
  | awk '{s += $1} END {print s + 0}')
bundle_bytes=$(find "$BUNDLE" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
total=$((tree_bytes + bundle_bytes))
awk -v t="$tree_bytes" -v b="$bundle_bytes" 'BEGIN {printf "travels: %.1f MiB (working tree %.1f MiB + bundle %.1f MiB; limit 62 MiB)\n", (t + b) / 1048576, t / 1048576, b / 1048576}'
if [ "$total" -gt "$LIMIT_BYTES" ]; then
  echo "gpu_bundle: $total bytes would travel, over the 62 MiB limit: make the bundle or the tree smaller" >&2
  exit 1
fi
