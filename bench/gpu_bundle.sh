#!/usr/bin/env bash
# Builds .gpu_bundle/ (git-ignored), what bench/gpu_check.sh needs on a bare GPU machine that has torch,
# transformers and accelerate but no package index and no ../shared: cp312 wheels of the few packages
# the core needs, the MiniLM tokenizer (no weights: the check uses random teachers of real shapes), a
# slice of the corpus, RTE, and the test data the GPU tests read. Run here, then carry .gpu_bundle:
#     bash bench/gpu_bundle.sh && du -sh .gpu_bundle      # must stay well under 64 MiB with the tree
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
BUNDLE=.gpu_bundle
rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels"

# The core's imports the GPU image lacks (pyarrow and fsspec: the versions datasets 5.2 requires; typer:
# the version whose exceptions cli.py names).
PACKAGES="datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 pyarrow==25.0.1
          pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.8.0 typing-inspection==0.4.5 typer==0.29.1"
for package in $PACKAGES; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$BUNDLE/wheels" "$package" 2>&1 \
    | grep -v "^WARNING: Location" || true
done

MINILM=hub/sentence-transformers/all-MiniLM-L6-v2
mkdir -p "$BUNDLE/shared/$MINILM" "$BUNDLE/shared/data/corpus"/{gutenberg,brown,wikitext-2-raw} \
         "$BUNDLE/shared/hub/nyu-mll/glue/rte"
cp "$SHARED/$MINILM"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} \
   "$BUNDLE/shared/$MINILM/"
head -c 1000000 "$SHARED/data/corpus/gutenberg/austen-emma.txt" > "$BUNDLE/shared/data/corpus/gutenberg/austen-emma.txt"
head -c 1000000 "$SHARED/data/corpus/brown/brown.txt" > "$BUNDLE/shared/data/corpus/brown/brown.txt"
head -n 2000 "$SHARED/data/corpus/wikitext-2-raw/wiki.test.raw" > "$BUNDLE/shared/data/corpus/wikitext-2-raw/wiki.test.raw"
cp "$SHARED/hub/nyu-mll/glue/rte"/*.parquet "$BUNDLE/shared/hub/nyu-mll/glue/rte/"
du -sh "$BUNDLE"
