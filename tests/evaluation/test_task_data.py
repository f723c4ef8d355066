"""A user's task read from its own files (issue 44, item 1): string or integer labels, one or two text columns,
classification or regression, each file format; anything that does not fit is one line before any model loads."""

import json

import pandas as pd
import pytest

from distilflow.config.tasks import TaskConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import SELECTION, compute_metrics, task_score
from distilflow.evaluation.task_data import REPORT, load_user_task

REVIEWS = [("a fine film", "positive"), ("dull and long", "negative"), ("loved it", "positive"),
           ("a waste of time", "negative"), ("great acting", "positive"), ("boring plot", "negative"),
           ("superb", "positive"), ("awful", "negative"), ("charming", "positive"), ("tedious", "negative")]


def _write(path, rows, columns):
    frame = pd.DataFrame(rows, columns=columns)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")))
    else:
        frame.to_parquet(path)
    return path


def _config(files, **task) -> TaskConfig:
    return TaskConfig.model_validate({"data": {"files": {k: str(v) for k, v in files.items()}}, "text": ["sentence"],
                                      **task})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_string_labels_become_indices_of_the_sorted_label_set_and_train_gives_a_held_out_slice(tmp_path, suffix):
    train = _write(tmp_path / f"train{suffix}", REVIEWS, ["sentence", "sentiment"])
    report = _write(tmp_path / f"test{suffix}", REVIEWS[:4], ["sentence", "sentiment"])
    loaded = load_user_task("reviews", _config({"train": train, "report": report}, label="sentiment",
                                               selection={"holdout": 0.2}))
    assert loaded.label_names == ("negative", "positive") and loaded.task.num_labels == 2
    assert loaded.splits[REPORT]["label"] == [1, 0, 1, 0]
    assert len(loaded.splits["train"]) == 8 and sorted(loaded.splits[SELECTION]["label"]) == [0, 1]  # stratified
    assert set(loaded.splits["train"]["sentence"]).isdisjoint(loaded.splits[SELECTION]["sentence"])
    assert loaded.splits["train"].column_names == ["sentence", "label"]
    # the GLUE metrics code scores it: one code path
    assert task_score(loaded.task, {REPORT: compute_metrics(loaded.task, [1, 0, 1, 1], [1, 0, 1, 0])}) == 0.75


def test_a_pair_of_texts_with_integer_labels_and_a_named_selection_split(tmp_path):
    rows = [(f"q{i}", f"a{i}", i % 3) for i in range(9)]
    files = {split: _write(tmp_path / f"{split}.csv", rows, ["question", "answer", "label"])
             for split in ("train", "dev", "test")}
    loaded = load_user_task("qa", TaskConfig.model_validate({
        "data": {"files": {"train": str(files["train"]), "report": str(files["test"]), "dev": str(files["dev"])}},
        "text": ["question", "answer"], "metrics": ["accuracy", "f1_macro"], "selection": {"split": "dev"}}))
    assert loaded.label_names == ("0", "1", "2") and loaded.task.text_columns == ("question", "answer")
    assert len(loaded.splits["train"]) == 9 and len(loaded.splits[SELECTION]) == 9  # the dev file, not a slice


def test_a_regression_task_keeps_its_scores(tmp_path):
    rows = [(f"s{i}", i / 2) for i in range(20)]
    train, report = (_write(tmp_path / f"{n}.csv", rows, ["sentence", "score"]) for n in ("train", "report"))
    loaded = load_user_task("sts", _config({"train": train, "report": report}, label="score", kind="regression",
                                           metrics=["pearson", "spearman"], selection={"holdout": 0.25}))
    assert loaded.task.is_regression and loaded.label_names == ()
    assert loaded.splits[REPORT]["label"] == [i / 2 for i in range(20)] and len(loaded.splits[SELECTION]) == 5


@pytest.mark.parametrize(("change", "fragments"), [
    ({"label": "stars"}, ["train split has no column 'stars'", "sentence, sentiment"]),
    ({"report_rows": [("odd", "neutral")]}, ["report split has label 'neutral'", "negative, positive"]),
    ({"train_rows": [("x", "positive")] * 10}, ["one label only ('positive')"]),
    ({"kind": "regression", "metrics": ["pearson"]}, ["holds 'positive', not a number"]),
    ({"train_rows": REVIEWS[:3]}, ["no held-out slice", "selection.split"]),
    ({"report_file": "missing.csv"}, ["data file", "missing.csv not found"]),
])
def test_data_that_does_not_fit_is_one_line(tmp_path, change, fragments):
    train = _write(tmp_path / "train.csv", change.get("train_rows", REVIEWS), ["sentence", "sentiment"])
    report = _write(tmp_path / "report.csv", change.get("report_rows", REVIEWS[:2]), ["sentence", "sentiment"])
    if "report_file" in change:
        report = tmp_path / change["report_file"]
    task = {key: value for key, value in change.items() if key in ("label", "kind", "metrics")}
    with pytest.raises(DistilflowError) as raised:
        load_user_task("reviews", _config({"train": train, "report": report}, **{"label": "sentiment", **task}))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("task reviews: ")
    assert all(fragment in message for fragment in fragments), message


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"data": {"files": {"train": "a.csv"}}, "text": ["s"]}, "no report split"),
    ({"data": {"files": {"train": "a.xlsx", "report": "b.csv"}}, "text": ["s"]}, "a.xlsx is not a file format"),
    ({"data": {"files": {"train": "a.csv", "report": "b.csv"}, "hub": "x/y"}, "text": ["s"]}, "one of the two"),
    ({"data": {"hub": "x/y"}, "text": ["s"], "metrics": ["pearson"]}, "does not score a classification"),
    ({"data": {"hub": "x/y"}, "text": ["a", "b", "c"]}, "at most 2"),
    ({"data": {"hub": "x/y"}, "text": ["s"], "selection": {"split": "report"}}, "never on the one"),
])
def test_a_task_description_that_cannot_work_is_refused(raw, fragment):
    with pytest.raises(ValueError, match=fragment):
        TaskConfig.model_validate(raw)
