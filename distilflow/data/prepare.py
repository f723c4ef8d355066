"""Tokenize a corpus into packed sequences, stored as Arrow. Masks are NOT stored: see masking.py.

Packing follows RoBERTa's FULL-SENTENCES: whole sentences are appended to a sequence until the next
one would not fit in `max_seq_length` (a sentence longer than that is cut into pieces). Sequences
that are very short or mostly [UNK] are dropped. The output folder holds `train/`, `validation/`
(a held-out slice of the training text), optionally `test/`, `token_counts.npy` (for masking
smoothing) and `meta.json` with a content fingerprint. DVC decides when it is rebuilt (dvc.yaml).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import PreTrainedTokenizerBase

from distilflow.config import CorpusSource, DataConfig
from distilflow.data.corpus import load_paragraphs, source_fingerprint
from distilflow.data.sources import file_sha256
from distilflow.errors import DistilflowError
from distilflow.ops.files import replace_folder
from distilflow.ops.hashing import fingerprint

# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets) before white space.
# A regex is enough here: a sentence cut in the wrong place only changes where packing breaks.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")
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


def split_sentences(paragraph: str) -> list[str]:
    return [sentence for sentence in SENTENCE_END.split(paragraph) if sentence.strip()]


def pack_sentences(sentences: list[list[int]], body_length: int) -> list[list[int]]:
    """Greedily pack token lists into bodies of at most `body_length` tokens, keeping sentences whole."""
    bodies: list[list[int]] = []
    current: list[int] = []
    for tokens in sentences:
        if len(current) + len(tokens) > body_length and current:
            bodies.append(current)
            current = []
        while len(tokens) > body_length:  # a sentence longer than a whole sequence
            bodies.append(tokens[:body_length])
            tokens = tokens[body_length:]
        current = current + tokens
    if current:
        bodies.append(current)
    return bodies


def tokenize_and_pack(paragraphs: list[str], tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> list[list[int]]:
    sentences = [sentence for paragraph in paragraphs for sentence in split_sentences(paragraph)]
    if not sentences:
        return []
    # Sentences are tokenized whole and cut to max_seq_length by packing, so the tokenizer's warning about
    # sequences longer than the model's limit is noise here.
    token_lists = tokenizer(sentences, add_special_tokens=False, verbose=False)["input_ids"]
    prefix, suffix = special_token_wrapping(tokenizer)
    body_length = max_seq_length - len(prefix) - len(suffix)
    return [prefix + body + suffix for body in pack_sentences(token_lists, body_length)]


def special_token_wrapping(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one sequence: ([CLS], [SEP]) for BERT, (<s>, </s>) for RoBERTa."""
    word = tokenizer("a", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next(i for i in range(len(wrapped)) if wrapped[i : i + len(word)] == word)
    return wrapped[:start], wrapped[start + len(word) :]


def tokenize_corpus(source: CorpusSource, tokenizer: PreTrainedTokenizerBase, config: DataConfig) -> Dataset:
    paragraphs = load_paragraphs(source, tokenizer.unk_token)
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
    key = fingerprint(
        "prepare-v1",
        config.model_dump(mode="json"),
        source_fingerprint(config.train),
        source_fingerprint(config.test) if config.test else None,
        type(tokenizer).__name__,
        sorted(tokenizer.get_vocab().items()),
        tokenizer.all_special_ids,
    )
    train = tokenize_corpus(config.train, tokenizer, config).shuffle(seed=config.seed)
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
        test = tokenize_corpus(config.test, tokenizer, config)
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
        "tokens": {name: int(sum(len(ids) for ids in split["input_ids"])) for name, split in splits.items()},
        "train_sources": source_fingerprint(config.train),
        "test_sources": source_fingerprint(config.test) if config.test else None,
    }
    _write(output, DatasetDict(splits), counts, meta)
    return PreparedData(output, key, meta)


def token_counts(split: Dataset, vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.int64)
    for batch in split.iter(batch_size=4096):
        flat = np.fromiter((i for ids in batch["input_ids"] for i in ids), dtype=np.int64)
        counts += np.bincount(flat, minlength=vocab_size)[:vocab_size]
    return counts


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
        checksums = {str(file.relative_to(staging)): file_sha256(file) for file in sorted(staging.rglob("*"))
                     if file.is_file()}
        # written last: marks the folder complete, and says what every file in it must hold
        (staging / META_FILE).write_text(json.dumps({**meta, "checksums": checksums}, indent=2))

    replace_folder(output, fill, marker=META_FILE)


def load_prepared(path: Path) -> PreparedData:
    """The prepare stage's output, checked against the checksums it was written with; a one-line error
    saying how to make it (again) otherwise."""
    prepared = read_prepared(path)
    if prepared is None:
        raise DistilflowError(f"no prepared corpus in '{path}': run `distilflow prepare` first, "
                              "or `dvc repro` for the whole pipeline")
    for name, checksum in prepared.meta.get("checksums", {}).items():
        file = path / name
        if not file.is_file() or file_sha256(file) != checksum:
            raise DistilflowError(f"prepared corpus in '{path}' is damaged ({name} is missing or changed since it "
                                  "was written): run `distilflow prepare` again (`dvc repro` does so by itself)")
    return prepared
