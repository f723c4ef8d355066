import pytest

from distilflow.config import CorpusSource
from distilflow.data.corpus import clean, expand_files, load_paragraphs
from distilflow.errors import DistilflowError
from tests.conftest import HUB


def test_wikitext_markers_are_undone():
    assert clean("the 1 @,@ 000 @-@ year <unk> war", "[UNK]") == "the 1,000-year [UNK] war"


def test_paragraphs_split_on_blank_lines(tmp_path):
    (tmp_path / "a.txt").write_text("First line\nsame paragraph.\n\n\nSecond one.\n")
    texts = list(load_paragraphs(CorpusSource(files=[str(tmp_path / "*.txt")]), "[UNK]")["text"])
    assert texts == ["First line same paragraph.", "Second one."]


def test_jsonl_rows_use_the_text_column(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"body": "one row."}\n{"body": "two rows."}\n')
    source = CorpusSource(files=[str(tmp_path / "rows.jsonl")], text_column="body")
    assert list(load_paragraphs(source, "[UNK]")["text"]) == ["one row.", "two rows."]


def test_hub_dataset_source_reads_the_mirror():
    source = CorpusSource(dataset=str(HUB / "nyu-mll" / "glue"), dataset_config="rte", split="validation",
                          text_column="sentence1")
    texts = list(load_paragraphs(source, "[UNK]")["text"])
    assert len(texts) == 277 and all(texts)


def test_pattern_matching_nothing_and_empty_corpus_are_errors(tmp_path):
    with pytest.raises(DistilflowError, match="matches no file"):
        expand_files([str(tmp_path / "*.txt")])
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(DistilflowError, match="contains no text"):
        load_paragraphs(CorpusSource(files=[str(tmp_path / "empty.txt")]), "[UNK]")


def test_binary_files_are_refused_and_latin1_text_is_read(tmp_path):
    import os

    (tmp_path / "random.bin.txt").write_bytes(os.urandom(200_000))
    with pytest.raises(DistilflowError, match="random.bin.txt' looks binary, not text"):
        load_paragraphs(CorpusSource(files=[str(tmp_path / "random.bin.txt")]), "[UNK]")
    (tmp_path / "latin1.txt").write_bytes("Mr. Knightley said: « très bien ».\n\nÉmile agreed.".encode("latin-1"))
    assert load_paragraphs(CorpusSource(files=[str(tmp_path / "latin1.txt")]), "[UNK]")["text"] == [
        "Mr. Knightley said: « très bien ».", "Émile agreed."]


def test_malformed_jsonl_is_one_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    with pytest.raises(DistilflowError, match="rows.jsonl' is not valid json .*fix or remove it"):
        load_paragraphs(CorpusSource(files=[str(tmp_path / "rows.jsonl")]), "[UNK]")


def test_a_folder_or_a_fifo_given_as_a_corpus_file_is_named_for_what_it_is(tmp_path):
    """Issue 23: both were "matches no file"."""
    import os

    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("Some text.\n")
    with pytest.raises(DistilflowError, match=rf"'{folder}' is a folder, not a file: give its files, e.g. '{folder}/\*.txt'"):
        expand_files([str(folder)])
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DistilflowError, match=rf"'{fifo}' is a FIFO, not a regular file"):
        expand_files([str(fifo)])
    assert expand_files([str(folder / "*.txt")]) == [folder / "a.txt"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 64])
def test_reading_a_chunk_at_a_time_splits_exactly_as_the_whole_text_would(tmp_path, monkeypatch, chunk):
    """Issue 25: the streaming reader cuts its buffer only where the regex cannot see further; any chunk size
    gives BLANK_LINES.split(text) of the whole file, \\r\\n and runs of blank lines included."""
    import random

    from distilflow.data import corpus

    monkeypatch.setattr(corpus, "CHUNK_CHARS", chunk)
    rng = random.Random(chunk)
    for case in range(40):
        text = "".join(rng.choice(["a", "b.", " ", "\n", "\n", "\r\n", "\t", "é"]) for _ in range(rng.randint(0, 120)))
        path = tmp_path / f"{case}.txt"
        path.write_bytes(text.encode("utf-8"))
        assert list(corpus.blank_line_split(path, "utf-8")) == corpus.BLANK_LINES.split(text), repr(text)


def test_each_corpus_file_is_read_once_to_hash_check_and_decode(tmp_path):
    """One scan gives the hash, the binary refusal and the encoding; a file cut inside a UTF-8 character is
    Latin-1, as decoding the whole file said."""
    from distilflow.base.pretrained import file_sha256
    from distilflow.data.corpus import scan_files

    (tmp_path / "a.txt").write_bytes("héllo\n\nworld".encode("utf-8"))
    (tmp_path / "b.txt").write_bytes("héllo".encode("utf-8")[:2])
    scans = scan_files(CorpusSource(files=[str(tmp_path / "*.txt")]))
    assert [(scan.encoding, scan.sha256) for scan in scans] == [
        ("utf-8", file_sha256(tmp_path / "a.txt")), ("latin-1", file_sha256(tmp_path / "b.txt"))]
