"""Text in row files (JSON lines, Parquet) and Hub datasets: one column of strings, read in batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, load_dataset

from distilflow.base.pretrained import resolve
from distilflow.config import CorpusSource
from distilflow.errors import DistilflowError, first_line

ROW_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


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


def row_texts(path: Path, reader: str, text_column: str) -> Iterator[str]:
    """The non-empty values of `text_column` in a row file, a thousand rows at a time."""
    try:
        rows = load_dataset(reader, data_files=str(path), split="train")
    except Exception as error:  # a malformed line, a truncated Parquet file: datasets raises several types
        cause = error.__cause__ or error
        if isinstance(cause, UnicodeDecodeError):
            raise DistilflowError(f"'{path}' holds bytes that are not UTF-8 ({cause.reason} at byte {cause.start}): "
                                  "re-encode the file as UTF-8") from None
        raise DistilflowError(f"'{path}' is not valid {reader} ({type(cause).__name__}: "
                              f"{first_line(cause)[:160]}): fix or remove it from data.*.files") from None
    if text_column not in rows.column_names:
        raise DistilflowError(f"'{path}' has no column '{text_column}': set data.*.text_column")
    require_text_column(path, text_column, rows.features[text_column])
    try:
        for batch in rows.iter(batch_size=1000):
            yield from (text for text in batch[text_column] if text)
    except UnicodeDecodeError as error:  # read as text; decoding a value failed
        raise DistilflowError(f"'{path}' holds bytes that are not UTF-8 in its '{text_column}' column ({error.reason} "
                              f"at byte {error.start} of a value): re-encode the file as UTF-8") from None


def require_text_column(path: Path, column: str, feature) -> None:
    """A row file's text column must hold strings: bytes would be read as their Python repr ("b'...'")."""
    dtype = getattr(feature, "dtype", type(feature).__name__)
    if dtype not in ("string", "large_string"):
        raise DistilflowError(f"'{path}' column '{column}' holds {dtype}, not text: store the text as strings "
                              "(UTF-8), or point data.*.text_column at a text column")
