"""Raw text in: local files/globs (.txt, .jsonl, .parquet) or a Hub dataset, as paragraphs.

Plain-text files are split into paragraphs on blank lines, which is what the Gutenberg, Brown and
WikiText files look like. JSON-lines and Parquet rows are taken one per paragraph from the text column.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from datasets import Dataset, load_dataset

from distilflow.config import CorpusSource
from distilflow.data.sources import file_sha256, resolve
from distilflow.errors import DistilflowError, first_line

TEXT_SUFFIXES = {".txt", ".raw", ".tokens", ".text"}
ROW_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}

# WikiText's tokenised release writes "@-@" for hyphens inside words and "<unk>" for rare words.
WIKITEXT_MARKERS = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}
BLANK_LINES = re.compile(r"\n\s*\n")
# Text has (almost) none; random bytes have 12.5%. Latin-1 and UTF-8 text pass alike.
MAX_CONTROL_BYTE_SHARE = 0.01


def expand_files(patterns: list[str]) -> list[Path]:
    """The files the patterns name, sorted and de-duplicated; a pattern matching no regular file is an error
    that says what it matched instead (a folder, a FIFO, ...)."""
    files: list[Path] = []
    for pattern in patterns:
        entries = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        matches = [path for path in entries if path.is_file()]
        if not matches:
            raise DistilflowError(f"corpus pattern '{pattern}' {_no_file_reason(pattern, entries)}")
        files.extend(matches)
    return list(dict.fromkeys(files))


def _no_file_reason(pattern: str, entries: list[Path]) -> str:
    if not entries:
        return "matches no file: fix data.*.files in params.yaml"
    if len(entries) == 1 and entries[0].is_dir():
        return (f"is a folder, not a file: give its files, e.g. '{entries[0] / '*.txt'}' (or '**/*.txt' "
                "for its subfolders too)")
    if len(entries) == 1:
        return f"is a {_kind(entries[0])}, not a regular file: give text files (.txt, .jsonl, .parquet)"
    kinds = sorted({_kind(path) for path in entries})
    return (f"matches {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} but no regular file ({', '.join(kinds)}):"
            " give text files (.txt, .jsonl, .parquet)")


def _kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.is_fifo():
        return "FIFO"
    if path.is_socket():
        return "socket"
    if path.is_char_device() or path.is_block_device():
        return "device"
    return "special file"


def require_text(source: CorpusSource) -> None:
    """Before any work: every pattern names files, and each plain-text file starts as text (its first MiB;
    the whole file is checked again as it is read)."""
    if not source.files:
        return
    for path in expand_files(source.files):
        if path.suffix.lower() not in ROW_FORMATS:
            with open(path, "rb") as handle:
                _refuse_binary(path, handle.read(1 << 20))


def _refuse_binary(path: Path, raw: bytes) -> None:
    control = control_byte_share(raw)
    if control > MAX_CONTROL_BYTE_SHARE:
        raise DistilflowError(f"'{path}' looks binary, not text ({100 * control:.0f}% NUL/control bytes): "
                              "remove it from data.*.files")


def source_fingerprint(source: CorpusSource) -> list[str]:
    """What identifies the raw text: file contents, or the Hub dataset's own fingerprint."""
    if source.files:
        return [f"{path}:{file_sha256(path)}" for path in expand_files(source.files)]
    return [f"dataset:{source.dataset}:{source.dataset_config}:{source.split}:{load_rows(source)._fingerprint}"]


def load_paragraphs(source: CorpusSource, unk_token: str) -> Dataset:
    """A one-column (`text`) dataset of non-empty paragraphs, in source order."""
    if source.dataset:
        texts = load_rows(source)[source.text_column]
    else:
        texts = []
        for path in expand_files(source.files):
            texts.extend(_file_paragraphs(path, source.text_column))
    paragraphs = [clean(text, unk_token) for text in texts]
    paragraphs = [text for text in paragraphs if text]
    if not paragraphs:
        raise DistilflowError(f"corpus {describe(source)} contains no text: point data.*.files at non-empty files")
    return Dataset.from_dict({"text": paragraphs})


def load_rows(source: CorpusSource) -> Dataset:
    try:
        rows = load_dataset(resolve(source.dataset), source.dataset_config, split=source.split)
    except Exception as error:  # datasets raises many types (FileNotFound, DatasetNotFound, ValueError)
        raise DistilflowError(
            f"dataset '{source.dataset}' ({source.dataset_config}, split {source.split}) could not be loaded "
            f"({str(error).strip().splitlines()[0][:200]}): check data.*.dataset in params.yaml"
        ) from None
    if source.text_column not in rows.column_names:
        raise DistilflowError(
            f"dataset '{source.dataset}' has no column '{source.text_column}' (it has {rows.column_names}): "
            "set data.*.text_column"
        )
    return rows


def _file_paragraphs(path: Path, text_column: str) -> list[str]:
    suffix = path.suffix.lower()
    if suffix in ROW_FORMATS:
        try:
            rows = load_dataset(ROW_FORMATS[suffix], data_files=str(path), split="train")
        except Exception as error:  # a malformed line, a truncated Parquet file: datasets raises several types
            cause = error.__cause__ or error
            raise DistilflowError(f"'{path}' is not valid {ROW_FORMATS[suffix]} ({type(cause).__name__}: "
                                  f"{first_line(cause)[:160]}): fix or remove it from data.*.files") from None
        if text_column not in rows.column_names:
            raise DistilflowError(f"'{path}' has no column '{text_column}': set data.*.text_column")
        return [str(text) for text in rows[text_column] if text]
    raw = path.read_bytes()
    _refuse_binary(path, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # older corpora (some Gutenberg files) are Latin-1; it decodes any byte
        text = raw.decode("latin-1")
    return BLANK_LINES.split(text)


def control_byte_share(raw: bytes) -> float:
    """The share of bytes that no text file holds: NUL and other C0 controls except tab, newlines, form feed."""
    if not raw:
        return 0.0
    allowed = b"\t\n\r\x0c"
    controls = sum(raw.count(bytes([code])) for code in range(32) if bytes([code]) not in allowed)
    return (controls + raw.count(b"\x7f")) / len(raw)


def clean(text: str, unk_token: str) -> str:
    """One paragraph on one line, WikiText markers undone."""
    for marker, replacement in WIKITEXT_MARKERS.items():
        text = text.replace(marker, replacement)
    text = text.replace("<unk>", unk_token)
    return " ".join(text.split())


def describe(source: CorpusSource) -> str:
    return f"dataset '{source.dataset}'" if source.dataset else f"files {source.files}"
