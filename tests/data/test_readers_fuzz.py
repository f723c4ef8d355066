"""Property-based fuzzing of the input readers: whatever bytes or rows they are given, they return
well-formed data or raise distilflow's one-line error, never anything else."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilflow.config import CorpusSource
from distilflow.data.corpus import clean, load_paragraphs
from distilflow.data.packing import pack_sentences
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import get_task, read_release_tsv

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(st.binary(max_size=3000), st.text(max_size=3000).map(lambda text: text.encode("utf-8", "surrogatepass"))))
def test_any_bytes_as_a_corpus_file_give_paragraphs_or_one_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.txt"
        path.write_bytes(content)
        try:
            paragraphs = load_paragraphs(CorpusSource(files=[str(path)]), "[UNK]")["text"]
        except DistilflowError as error:
            assert "\n" not in str(error)
            return
    assert paragraphs and all(text and "\n" not in text and text == text.strip() for text in paragraphs)


@FUZZ
@given(st.text(max_size=500))
def test_cleaning_is_idempotent_and_leaves_one_line(text):
    once = clean(text, "[UNK]")
    assert clean(once, "[UNK]") == once and "\n" not in once


@FUZZ
@given(st.lists(st.lists(st.integers(0, 30000), max_size=80), max_size=40), st.integers(1, 64))
def test_packing_keeps_every_token_in_order_within_the_length(sentences, body_length):
    bodies = pack_sentences(sentences, body_length)
    assert all(0 < len(body) <= body_length for body in bodies)
    assert [token for body in bodies for token in body] == [token for sentence in sentences for token in sentence]


CELL = st.text(alphabet=st.characters(blacklist_characters="\t\r\n\x00", blacklist_categories=("Cs",)), max_size=30)


@FUZZ
@given(st.lists(st.lists(CELL, max_size=6), max_size=12), st.booleans())
def test_any_rows_in_a_glue_release_file_give_a_dataset_or_one_error(rows, with_header):
    task = get_task("rte")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dev.tsv"
        header = [["index", "sentence1", "sentence2", "label"]] if with_header else []
        path.write_text("".join("\t".join(row) + "\n" for row in header + rows), encoding="utf-8")
        try:
            data = read_release_tsv(task, path)
        except DistilflowError as error:
            assert "\n" not in str(error)
            return
    assert len(data) > 0 and set(data["label"]) <= {0, 1}
