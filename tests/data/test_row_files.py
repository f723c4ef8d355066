"""Row files whose text is not text: one line naming the file and the fix, never a traceback or bytes read as
their Python repr."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distilflow.config import CorpusSource
from distilflow.data.corpus import load_paragraphs
from distilflow.errors import DistilflowError

NOT_UTF8 = b"caf\xe9 au lait"  # Latin-1 inside a file that says it is UTF-8


def _load(path):
    return load_paragraphs(CorpusSource(files=[str(path)]), "[UNK]", cache_dir=path.parent / "cache")


def test_json_lines_with_bytes_that_are_not_utf8_inside_a_value(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"text": "plain words here"}\n{"text": "' + NOT_UTF8 + b'"}\n')
    with pytest.raises(DistilflowError, match=rf"'{path}' holds bytes that are not UTF-8 .*: re-encode the file as UTF-8"):
        _load(path)


def test_a_parquet_string_column_with_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "rows.parquet"
    raw = pa.array([b"plain words here", NOT_UTF8], type=pa.binary())
    pq.write_table(pa.table({"text": pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())}), path)
    with pytest.raises(DistilflowError, match=rf"'{path}' holds bytes that are not UTF-8 in its 'text' column"):
        _load(path)


def test_a_parquet_column_of_bytes_is_not_read_as_their_repr(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": pa.array([b"plain words here", b"more words"], type=pa.binary())}), path)
    with pytest.raises(DistilflowError, match=rf"'{path}' column 'text' holds binary, not text: store the text as "
                                              r"strings"):
        _load(path)


def test_a_parquet_string_column_is_read(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": ["plain words here", "more words there"]}), path)
    assert _load(path)["text"] == ["plain words here", "more words there"]
