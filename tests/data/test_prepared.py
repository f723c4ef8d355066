import numpy as np
import pytest

from distilflow.config import CorpusSource, DataConfig
from distilflow.data.packing import pack_sentences, special_token_wrapping, split_sentences
from distilflow.data.prepared import load_prepared, prepare_corpus
from distilflow.errors import DistilflowError
from tests.conftest import tiny_data_config


def test_sentences_split_after_terminal_punctuation():
    assert split_sentences('He left. "Why?" she asked! Fine.') == ["He left.", '"Why?"', "she asked!", "Fine."]


def test_packing_keeps_sentences_whole_and_within_length():
    sentences = [[1] * 3, [2] * 4, [3] * 2, [4] * 9, [5] * 1]
    bodies = pack_sentences(sentences, body_length=6)
    assert bodies == [[1, 1, 1], [2, 2, 2, 2, 3, 3], [4] * 6, [4, 4, 4, 5]]
    assert all(len(body) <= 6 for body in bodies)


def test_special_token_wrapping_is_cls_sep_for_bert(tokenizer):
    assert special_token_wrapping(tokenizer) == ([tokenizer.cls_token_id], [tokenizer.sep_token_id])


def test_prepare_packs_real_text_deterministically(tmp_path, small_corpus, tokenizer):
    prepared = prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path / "a")
    train = list(prepared.split("train")["input_ids"])
    assert len(train) > 100 and len(prepared.split("validation")) > 10 and len(prepared.split("test")) > 10
    assert all(8 <= len(ids) <= 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
               for ids in train)
    assert np.mean([len(ids) for ids in train]) > 24  # packing fills sequences
    counts = prepared.token_counts()
    assert counts.sum() == sum(len(ids) for ids in train)

    again = prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path / "b")
    assert again.fingerprint == prepared.fingerprint
    assert list(again.split("train")["input_ids"]) == train

    changed = prepare_corpus(tiny_data_config(small_corpus, max_seq_length=48), tokenizer, tmp_path / "a")
    assert changed.fingerprint != prepared.fingerprint


def test_unk_heavy_and_short_sequences_are_dropped(tmp_path, tokenizer):
    (tmp_path / "t.txt").write_text("Tiny.\n\n" + "<unk> " * 40 + "\n\n" + "A proper sentence with words. " * 30)
    prepared = prepare_corpus(DataConfig(train=CorpusSource(files=[str(tmp_path / "t.txt")]), max_seq_length=32,
                                         min_seq_length=8, validation_fraction=0.3), tokenizer, tmp_path / "out")
    everything = list(prepared.split("train")["input_ids"]) + list(prepared.split("validation")["input_ids"])
    assert everything and all(ids.count(tokenizer.unk_token_id) <= 0.1 * len(ids) for ids in everything)


def test_too_little_text_is_a_clear_error(tmp_path, tokenizer):
    (tmp_path / "t.txt").write_text("Too short.")
    with pytest.raises(DistilflowError, match="usable sequences"):
        prepare_corpus(DataConfig(train=CorpusSource(files=[str(tmp_path / "t.txt")])), tokenizer, tmp_path / "o")


def test_an_empty_held_out_set_is_an_error_not_a_zero_loss(tmp_path, small_corpus, tokenizer):
    (tmp_path / "short.txt").write_text("Tiny.\n\nAlso tiny.")
    config = tiny_data_config(small_corpus).model_copy(update={"test": CorpusSource(files=[str(tmp_path / "short.txt")])})
    with pytest.raises(DistilflowError, match="held-out corpus .* gives no usable sequences"):
        prepare_corpus(config, tokenizer, tmp_path / "out")


def test_damaged_prepared_data_is_reported_with_the_fix(tmp_path, small_corpus, tokenizer):
    prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path / "prepared")
    assert load_prepared(tmp_path / "prepared").meta["sequences"]["train"] > 0
    arrow = next((tmp_path / "prepared" / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])  # truncated, as by a full disk
    with pytest.raises(DistilflowError, match="is damaged .*run `distilflow prepare` again"):
        load_prepared(tmp_path / "prepared")
    with pytest.raises(DistilflowError, match="no prepared corpus in .* run `distilflow prepare` first"):
        load_prepared(tmp_path / "nothing_here")


def test_a_load_checks_sizes_and_ends_and_the_full_check_every_byte(tmp_path, small_corpus, tokenizer, monkeypatch):
    """Issue 25: each load reads a fixed amount per file, whatever the data's size; a byte changed in the middle
    of a file is for `distilflow prepare --verify` (load_prepared(full=True)) to find."""
    from distilflow.data import prepared as prepare_module

    monkeypatch.setattr(prepare_module, "ENDS_BYTES", 4096)  # this small corpus's files are ~100 KB
    prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path / "prepared")
    hashed = []
    with monkeypatch.context() as patched:
        patched.setattr(prepare_module, "file_sha256", lambda path: hashed.append(path) or "")
        load_prepared(tmp_path / "prepared")
    assert hashed == []  # no file read whole on a load
    arrow = max((tmp_path / "prepared" / "train").glob("*.arrow"), key=lambda p: p.stat().st_size)
    data = bytearray(arrow.read_bytes())
    assert len(data) > 3 * prepare_module.ENDS_BYTES  # the middle is outside the ends a load hashes
    data[len(data) // 2] ^= 0xFF
    arrow.write_bytes(bytes(data))
    assert load_prepared(tmp_path / "prepared").meta["sequences"]["train"] > 0
    with pytest.raises(DistilflowError, match="is damaged"):
        load_prepared(tmp_path / "prepared", full=True)


def test_many_files_and_a_hub_style_dataset_folder_are_prepared_without_a_python_list_of_the_corpus(
        tmp_path, small_corpus, tokenizer, monkeypatch):
    """Issue 25: the text goes from its files (or a dataset's Arrow) to Arrow on disk; building the corpus as
    an in-memory table (`Dataset.from_dict` / `from_list`, what prepare did) fails this test."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    paragraphs = [text for path in sorted(small_corpus.glob("*.txt")) for text in path.read_text().split("\n\n")
                  if text.strip()]
    many = tmp_path / "many"
    many.mkdir()
    for index in range(0, len(paragraphs), 7):  # many small files, found by a glob
        (many / f"part-{index:05d}.txt").write_text("\n\n".join(paragraphs[index:index + 7]))
    hub = tmp_path / "hub-style" / "data"  # what a downloaded Hub dataset looks like: data files in a folder
    hub.mkdir(parents=True)
    pq.write_table(pa.table({"text": paragraphs}), hub / "train-00000-of-00001.parquet")

    def refuse(*args, **kwargs):
        raise AssertionError("the corpus was built as an in-memory table")

    monkeypatch.setattr(Dataset, "from_dict", refuse)
    monkeypatch.setattr(Dataset, "from_list", refuse)
    from_files = prepare_corpus(DataConfig(train=CorpusSource(files=[str(many / "*.txt")]), max_seq_length=64,
                                           min_seq_length=8), tokenizer, tmp_path / "from_files")
    from_hub = prepare_corpus(DataConfig(train=CorpusSource(dataset=str(hub.parent), split="train"), max_seq_length=64,
                                         min_seq_length=8), tokenizer, tmp_path / "from_hub")
    assert len(list(many.glob("*.txt"))) > 10
    assert from_files.meta["sequences"]["train"] > 10
    assert from_files.meta["tokens"] == from_hub.meta["tokens"]  # the same paragraphs, read two ways


def test_a_killed_prepares_work_folder_is_removed_by_the_next(tmp_path, small_corpus, tokenizer):
    """A SIGKILL leaves the temporary folder (with datasets' lock files); the next prepare clears it."""
    stale = tmp_path / ".prepared-work-killed"
    (stale / "generator").mkdir(parents=True)
    (stale / "generator" / "x.lock").write_text("")
    mine = tmp_path / "mine-work"  # not prepare's: kept
    mine.mkdir()
    prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path / "prepared")
    assert not stale.exists() and mine.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".prepared-work-")] == []
