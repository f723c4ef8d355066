"""Tokenize a corpus into packed sequences (packing.py), stored as Arrow. Masks are NOT stored: see
masking.py. Sequences that are very short or mostly [UNK] are dropped. The output folder holds `train/`, `validation/`
(a held-out slice of the training text), optionally `test/`, `token_counts.npy` (for masking
smoothing) and `meta.json` with a content fingerprint. DVC decides when it is rebuilt (dvc.yaml).

Memory does not grow with the corpus: the text goes from its files to Arrow on disk (corpus.py), is
tokenised and packed batch by batch in worker processes, and counted with vectorised Arrow/numpy
operations; the intermediate Arrow files live in a temporary folder beside the output, removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import PreTrainedTokenizerBase

from distilflow.base.files import replace_folder, scratch_folder
from distilflow.base.hashing import fingerprint
from distilflow.base.pretrained import file_sha256
from distilflow.config import CorpusSource, DataConfig
from distilflow.data.corpus import load_paragraphs, scan_files, source_fingerprint
from distilflow.data.packing import tokenize_and_pack
from distilflow.errors import DistilflowError

META_FILE = "meta.json"
TOKEN_COUNTS_FILE = "token_counts.npy"


@dataclass(frozen=True)
class PreparedData:
    path: Path
    fingerprint: str
    meta: dict

    def split(self, name: str) -> Dataset:
        return load_from_disk(str(self.path / name))

    def token_counts(self) -> np.ndarray:
        return np.load(self.path / TOKEN_COUNTS_FILE)


def tokenize_corpus(source: CorpusSource, tokenizer: PreTrainedTokenizerBase, config: DataConfig,
                    scans=None, cache_dir: Path | None = None) -> Dataset:
    paragraphs = load_paragraphs(source, tokenizer.unk_token, scans, cache_dir)
    workers = max(1, min(os.cpu_count() or 1, len(paragraphs) // 2000))

    def pack_batch(batch: dict) -> dict:
        return {"input_ids": tokenize_and_pack(batch["text"], tokenizer, config.max_seq_length)}

    packed = paragraphs.map(
        pack_batch, batched=True, batch_size=500, num_proc=workers if workers > 1 else None,
        remove_columns=["text"], desc="tokenize + pack",
    )
    unk_id = tokenizer.unk_token_id

    def keep(example: dict) -> bool:
        ids = example["input_ids"]
        return len(ids) >= config.min_seq_length and ids.count(unk_id) <= config.max_unk_fraction * len(ids)

    return packed.filter(keep, desc="drop short / [UNK]-heavy")


def prepare_corpus(config: DataConfig, tokenizer: PreTrainedTokenizerBase, output: Path) -> PreparedData:
    """Tokenize train (and test) text into `output` (swapped in whole); its fingerprint names the content."""
    with scratch_folder(output) as work:
        return _prepare(config, tokenizer, output, work)


def _prepare(config: DataConfig, tokenizer: PreTrainedTokenizerBase, output: Path, work: Path) -> PreparedData:
    scans = {"train": scan_files(config.train), "test": scan_files(config.test) if config.test else []}
    sources = {"train": source_fingerprint(config.train, scans["train"]),
               "test": source_fingerprint(config.test, scans["test"]) if config.test else None}
    key = fingerprint(
        "prepare-v1",
        config.model_dump(mode="json"),
        sources["train"],
        sources["test"],
        type(tokenizer).__name__,
        sorted(tokenizer.get_vocab().items()),
        tokenizer.all_special_ids,
    )
    train = tokenize_corpus(config.train, tokenizer, config, scans["train"], work).shuffle(seed=config.seed)
    if config.max_train_sequences:
        train = train.select(range(min(config.max_train_sequences, len(train))))
    if len(train) < 2:
        raise DistilflowError(
            f"corpus {config.train.files or config.train.dataset} gives {len(train)} usable sequences: "
            f"add text or lower data.min_seq_length ({config.min_seq_length})"
        )
    halves = train.train_test_split(test_size=config.validation_fraction, seed=config.seed)
    splits = {"train": halves["train"], "validation": halves["test"]}
    if config.test:
        test = tokenize_corpus(config.test, tokenizer, config, scans["test"], work)
        if config.max_test_sequences:
            test = test.select(range(min(config.max_test_sequences, len(test))))
        if len(test) == 0:
            raise DistilflowError(f"held-out corpus {config.test.files or config.test.dataset} gives no usable "
                                  f"sequences: add text or lower data.min_seq_length ({config.min_seq_length})")
        splits["test"] = test

    counts = token_counts(splits["train"], len(tokenizer))
    meta = {
        "fingerprint": key,
        "tokenizer": tokenizer.name_or_path,
        "sequences": {name: len(split) for name, split in splits.items()},
        "tokens": {name: token_total(split) for name, split in splits.items()},
        "train_sources": sources["train"],
        "test_sources": sources["test"],
    }
    _write(output, DatasetDict(splits), counts, meta)
    return PreparedData(output, key, meta)


def _id_lists(split: Dataset, batch_size: int = 65_536):
    """The input_ids column a batch at a time as Arrow lists (no Python list per sequence)."""
    for batch in split.with_format("arrow").iter(batch_size=batch_size):
        yield batch["input_ids"]


def token_counts(split: Dataset, vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in _id_lists(split):
        counts += np.bincount(pc.list_flatten(ids).to_numpy(), minlength=vocab_size)[:vocab_size]
    return counts


def token_total(split: Dataset) -> int:
    return sum(int(pc.sum(pc.list_value_length(ids)).as_py() or 0) for ids in _id_lists(split))


def input_ids_sha256(split: Dataset) -> str:
    """A hash of the token ids of every sequence, in order (folder hashes also change with Arrow's own
    fingerprints; this changes only with the ids)."""
    digest = hashlib.sha256()
    for ids in _id_lists(split):
        digest.update(pc.list_value_length(ids).to_numpy().astype(np.int64).tobytes())
        digest.update(pc.list_flatten(ids).to_numpy().astype(np.int64).tobytes())
    return digest.hexdigest()


def read_prepared(path: Path) -> PreparedData | None:
    meta_path = path / META_FILE
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    return PreparedData(path, meta["fingerprint"], meta)


def _write(output: Path, splits: DatasetDict, counts: np.ndarray, meta: dict) -> None:
    def fill(staging: Path) -> None:
        for name, split in splits.items():
            split.save_to_disk(str(staging / name))
        np.save(staging / TOKEN_COUNTS_FILE, counts)
        files = {str(file.relative_to(staging)): _identity(file, full=True) for file in sorted(staging.rglob("*"))
                 if file.is_file()}
        # written last: marks the folder complete, and says what every file in it must hold
        (staging / META_FILE).write_text(json.dumps({**meta, "files": files}, indent=2))

    replace_folder(output, fill, marker=META_FILE)


ENDS_BYTES = 1 << 16


def _identity(file: Path, full: bool) -> dict:
    """Size and a hash of the first and last 64 KiB (cheap: what every load checks); with `full`, the
    sha256 of the whole file too (written once; checked by `load_prepared(..., full=True)`)."""
    size = file.stat().st_size
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        digest.update(handle.read(ENDS_BYTES))
        handle.seek(max(0, size - ENDS_BYTES))
        digest.update(handle.read(ENDS_BYTES))
    identity = {"bytes": size, "ends_sha256": digest.hexdigest()}
    return {**identity, "sha256": file_sha256(file)} if full else identity


def load_prepared(path: Path, full: bool = False) -> PreparedData:
    """The prepare stage's output, checked against what it was written with — sizes and each file's ends on
    every load (a cost that does not grow with the data: a truncated or swapped file shows), every byte
    with `full` (`distilflow prepare --verify`) — or a one-line error saying how to make it (again)."""
    prepared = read_prepared(path)
    if prepared is None:
        raise DistilflowError(f"no prepared corpus in '{path}': run `distilflow prepare` first, "
                              "or `dvc repro` for the whole pipeline")
    expected = prepared.meta.get("files") or {name: {"sha256": checksum}  # written before sizes were kept
                                              for name, checksum in prepared.meta.get("checksums", {}).items()}
    for name, identity in expected.items():
        file = path / name
        wanted = identity if full or "bytes" not in identity else {k: identity[k] for k in ("bytes", "ends_sha256")}
        if not file.is_file() or not _matches(file, wanted):
            raise DistilflowError(f"prepared corpus in '{path}' is damaged ({name} is missing or changed since it "
                                  "was written): run `distilflow prepare` again (`dvc repro` does so by itself)")
    return prepared


def _matches(file: Path, wanted: dict) -> bool:
    found = _identity(file, full="sha256" in wanted) if "bytes" in wanted else {"sha256": file_sha256(file)}
    return all(found[key] == value for key, value in wanted.items())
