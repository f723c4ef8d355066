"""Raw text in: local files/globs (.txt, .jsonl, .parquet) or a Hub dataset, as paragraphs.

Plain-text files are split into paragraphs on blank lines, which is what the Gutenberg, Brown and
WikiText files look like. JSON-lines and Parquet rows are taken one per paragraph from the text column.

Nothing here holds a corpus in memory: each file is scanned once (its hash, whether it is text, whether it
is UTF-8), then read again in chunks by a generator that `Dataset.from_generator` writes to Arrow on disk;
a Hub dataset is cleaned by an Arrow-backed `map`. Memory stays flat however large the corpus is.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, Features, Value

from distilflow.base.pretrained import file_sha256
from distilflow.config import CorpusSource
from distilflow.data.row_files import ROW_FORMATS, load_rows, row_texts
from distilflow.errors import DistilflowError

TEXT_SUFFIXES = {".txt", ".raw", ".tokens", ".text"}

# WikiText's tokenised release writes "@-@" for hyphens inside words and "<unk>" for rare words.
WIKITEXT_MARKERS = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}
BLANK_LINES = re.compile(r"\n\s*\n")
NOT_SPACE = re.compile(r"\S")
CHUNK_CHARS = 1 << 20  # read and scan files a MiB at a time
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
                _refuse_binary(path, control_byte_share(handle.read(1 << 20)))


def _refuse_binary(path: Path, control: float) -> None:
    if control > MAX_CONTROL_BYTE_SHARE:
        raise DistilflowError(f"'{path}' looks binary, not text ({100 * control:.0f}% NUL/control bytes): "
                              "remove it from data.*.files")


@dataclass(frozen=True)
class FileScan:
    path: str
    sha256: str
    encoding: str | None  # utf-8 or latin-1 for plain text; None for row formats (.jsonl, .parquet)


def scan_files(source: CorpusSource) -> list[FileScan]:
    """Each file of a file source read once: its hash, and for plain text whether it is text at all (binary
    files are refused, naming the file) and whether it decodes as UTF-8 (older corpora, such as some
    Gutenberg files, are Latin-1, which decodes any byte)."""
    return [_scan(path) for path in expand_files(source.files)] if source.files else []


def _scan(path: Path) -> FileScan:
    if path.suffix.lower() in ROW_FORMATS:
        return FileScan(str(path), file_sha256(path), None)
    digest, decoder = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")()
    size = controls = 0
    utf8 = True
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_CHARS), b""):
            digest.update(block)
            size += len(block)
            controls += control_bytes(block)
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)  # a file cut inside a multi-byte character
        except UnicodeDecodeError:
            utf8 = False
    if size and controls / size > MAX_CONTROL_BYTE_SHARE:
        _refuse_binary(path, controls / size)
    return FileScan(str(path), digest.hexdigest(), "utf-8" if utf8 else "latin-1")


def source_fingerprint(source: CorpusSource, scans: list[FileScan] | None = None) -> list[str]:
    """What identifies the raw text: file contents (from `scans`, so that each file is hashed once per
    prepare), or the Hub dataset's own fingerprint."""
    if source.files:
        return [f"{scan.path}:{scan.sha256}" for scan in (scans if scans is not None else scan_files(source))]
    return [f"dataset:{source.dataset}:{source.dataset_config}:{source.split}:{load_rows(source)._fingerprint}"]


def load_paragraphs(source: CorpusSource, unk_token: str, scans: list[FileScan] | None = None,
                    cache_dir: Path | None = None) -> Dataset:
    """A one-column (`text`) dataset of non-empty, cleaned paragraphs, in source order, on disk (in
    `cache_dir`, or datasets' cache)."""
    if source.dataset:
        rows = load_rows(source)
        paragraphs = rows.map(lambda batch: {"text": [text for text in (clean(str(t), unk_token) for t in batch[
            source.text_column] if t) if text]}, batched=True, remove_columns=rows.column_names, desc="clean text")
    else:
        scans = scans if scans is not None else scan_files(source)
        if next(_paragraphs(scans, source.text_column, unk_token), None) is None:  # datasets refuses 0 rows
            raise DistilflowError(f"corpus {describe(source)} contains no text: point data.*.files at non-empty files")
        # the scans' hashes are in gen_kwargs, so datasets' cache of this generator follows the files' content
        paragraphs = Dataset.from_generator(_paragraphs, features=Features({"text": Value("string")}),
                                            cache_dir=str(cache_dir) if cache_dir else None,
                                            gen_kwargs={"scans": scans, "text_column": source.text_column,
                                                        "unk_token": unk_token})
    if len(paragraphs) == 0:
        raise DistilflowError(f"corpus {describe(source)} contains no text: point data.*.files at non-empty files")
    return paragraphs


def _paragraphs(scans: list[FileScan], text_column: str, unk_token: str) -> Iterator[dict]:
    for scan in scans:
        for text in _file_paragraphs(scan, text_column):
            cleaned = clean(text, unk_token)
            if cleaned:
                yield {"text": cleaned}


def _file_paragraphs(scan: FileScan, text_column: str) -> Iterator[str]:
    path = Path(scan.path)
    suffix = path.suffix.lower()
    if suffix in ROW_FORMATS:
        yield from row_texts(path, ROW_FORMATS[suffix], text_column)
        return
    yield from blank_line_split(path, scan.encoding or "utf-8")


def blank_line_split(path: Path, encoding: str) -> Iterator[str]:
    """`BLANK_LINES.split(whole text)`, read a chunk at a time: the buffer is cut only at a break whose run
    of white space ends inside it, where the regex's match cannot depend on text not yet read. newline=""
    keeps \r\n as the file has it, as decoding the bytes did."""
    buffer = ""
    with open(path, encoding=encoding, newline="") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_CHARS), ""):
            buffer += chunk
            cut = None
            for match in BLANK_LINES.finditer(buffer):
                if NOT_SPACE.search(buffer, match.end()):
                    cut = match
            if cut is not None:
                yield from BLANK_LINES.split(buffer[:cut.start()])
                buffer = buffer[cut.end():]
    yield from BLANK_LINES.split(buffer)


ALLOWED_CONTROLS = b"\t\n\r\x0c"


def control_bytes(raw: bytes) -> int:
    """Bytes that no text file holds: NUL and other C0 controls except tab, newlines, form feed; DEL."""
    controls = sum(raw.count(bytes([code])) for code in range(32) if bytes([code]) not in ALLOWED_CONTROLS)
    return controls + raw.count(b"\x7f")


def control_byte_share(raw: bytes) -> float:
    return control_bytes(raw) / len(raw) if raw else 0.0


def clean(text: str, unk_token: str) -> str:
    """One paragraph on one line, WikiText markers undone."""
    for marker, replacement in WIKITEXT_MARKERS.items():
        text = text.replace(marker, replacement)
    text = text.replace("<unk>", unk_token)
    return " ".join(text.split())


def describe(source: CorpusSource) -> str:
    return f"dataset '{source.dataset}'" if source.dataset else f"files {source.files}"
