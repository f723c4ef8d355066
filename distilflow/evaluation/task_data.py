"""A user's labelled task read into the schema the GLUE code path takes: its text columns and an integer `label`
(classification: the index in the label set read from the training split) or a float one (regression), the
splits `train`, `report` and the one chosen on (`selection`: a split of the data, or a seeded, stratified
held-out slice of train). Local CSV, TSV, JSON-lines and Parquet files, or a Hub dataset, through `datasets`
(Arrow, memory-mapped: a large file is not held in memory).

Anything that does not fit is one line naming the file or split, what is wrong, and the fix, before any model is
loaded: a missing column, a label in the report split the training split never has, a non-numeric regression label,
a single class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from distilflow.base.pretrained import resolve
from distilflow.config.tasks import FILE_FORMATS, TaskConfig
from distilflow.errors import DistilflowError, first_line
from distilflow.evaluation.glue_data import SELECTION, GlueTask, held_out_splits

REPORT = ""  # the evaluation name of the report split (GLUE's dev set is the one evaluation "")
NEW_LABEL = "__distilflow_label"


@dataclass(frozen=True)
class UserTask:
    """A task and its rows: `task` is what the fine-tuning, metrics and export code take."""

    task: GlueTask
    splits: dict[str, Dataset]  # train, SELECTION, and REPORT ("") in the GLUE schema
    label_names: tuple[str, ...]  # classification: the name of each label index (the classifier's id2label)


def load_user_task(name: str, config: TaskConfig) -> UserTask:
    raw = _read_splits(name, config)
    for split, rows in raw.items():
        _require_columns(name, config, split, rows)
    labels = _label_set(name, config, raw["train"]) if config.kind == "classification" else ()
    if "f1" in config.metrics and len(labels) != 2:
        raise DistilflowError(f"task {name}: metric f1 scores two labels and the train split has {len(labels)} "
                              f"({', '.join(labels[:10])}): use f1_macro")
    converted = {split: _to_schema(name, config, split, rows, labels) for split, rows in raw.items()}
    task = GlueTask(name, tuple(config.text), len(labels) if labels else 1, tuple(config.metrics), folder="",
                    evaluations={REPORT: ("report", "")}, label_names=labels)
    if config.selection.split is not None:
        selection = converted.pop(config.selection.split)
        splits = {"train": converted["train"], SELECTION: selection}
    else:
        splits = _held_out(name, task, converted["train"], config)
    return UserTask(task, {**splits, REPORT: converted["report"]}, labels)


def _held_out(name: str, task: GlueTask, train: Dataset, config: TaskConfig) -> dict[str, Dataset]:
    try:
        return held_out_splits(task, train, config.selection.holdout, config.selection.seed)
    except ValueError as error:  # too few rows of a label to stratify, or a slice of no rows
        raise DistilflowError(f"task {name}: no held-out slice of {config.selection.holdout:.0%} of the train split "
                              f"stratified by label ({first_line(error)[:120]}): add rows, raise selection.holdout, or "
                              "name a selection.split") from None


def _read_splits(name: str, config: TaskConfig) -> dict[str, Dataset]:
    """train, report and a named selection split, as `datasets` reads them."""
    wanted = ["train", "report", *([config.selection.split] if config.selection.split else [])]
    data = config.data
    if data.files:
        missing = [split for split in wanted if split not in data.files]
        if missing:
            raise DistilflowError(f"task {name}: selection.split {missing[0]} is not among its files "
                                  f"({', '.join(data.files)}): add it to data.files or drop selection.split")
        return {split: _read_file(name, data.files[split]) for split in wanted}
    try:
        loaded = load_dataset(resolve(data.hub), data.config)
    except Exception as error:  # DatasetNotFoundError, a missing config, connection errors
        raise DistilflowError(f"task {name}: dataset {data.hub} could not be loaded ({first_line(error)[:160]}): "
                              "check data.hub and data.config") from None
    splits = {**data.splits, **({config.selection.split: config.selection.split} if config.selection.split else {})}
    absent = [ours for ours in wanted if splits.get(ours) not in loaded]
    if absent:
        raise DistilflowError(f"task {name}: dataset {data.hub} has no split {splits.get(absent[0], absent[0])!r} "
                              f"(it has {', '.join(loaded)}): set data.splits.{absent[0]}")
    return {split: loaded[splits[split]] for split in wanted}


def _read_file(name: str, path: Path) -> Dataset:
    if not path.is_file():
        raise DistilflowError(f"task {name}: data file {path} not found: check data.files")
    suffix = path.suffix.lower()
    options = {"delimiter": "\t"} if suffix == ".tsv" else {}
    try:
        read = load_dataset(FILE_FORMATS[suffix], data_files={"rows": str(path)}, **options)
    except Exception as error:  # a malformed file: pyarrow's or pandas' parser errors
        raise DistilflowError(f"task {name}: {path} could not be read as {suffix[1:]} ({first_line(error)[:160]}): "
                              "fix the file") from None
    assert isinstance(read, DatasetDict)
    return read["rows"]


def _require_columns(name: str, config: TaskConfig, split: str, rows: Dataset) -> None:
    for column in [*config.text, config.label]:
        if column not in rows.column_names:
            raise DistilflowError(f"task {name}: the {split} split has no column {column!r} (it has "
                                  f"{', '.join(rows.column_names[:12])}): set text: and label: to its columns")
    if len(rows) == 0:
        raise DistilflowError(f"task {name}: the {split} split has no rows: give it data")


def _label_set(name: str, config: TaskConfig, train: Dataset) -> tuple[str, ...]:
    """The training split's labels, as strings, sorted (integers by value): the classifier's label order."""
    values = set(train.unique(config.label))
    if None in values:
        raise DistilflowError(f"task {name}: the train split has rows without a {config.label!r}: label them or drop "
                              "them")
    if len(values) < 2:
        raise DistilflowError(f"task {name}: the train split has one label only ({next(iter(values))!r}): a "
                              "classifier needs two or more")
    ordered = sorted(values, key=lambda v: (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))
    return tuple(str(value) for value in ordered)


def _to_schema(name: str, config: TaskConfig, split: str, rows: Dataset, labels: tuple[str, ...]) -> Dataset:
    """The text columns as they are and `label` as the label's index (or float score)."""
    index = {label: i for i, label in enumerate(labels)}

    def convert(batch):
        values = batch[config.label]
        if config.kind == "regression":
            return {NEW_LABEL: [_score(name, split, config.label, value) for value in values]}
        unknown = next((v for v in values if str(v) not in index), None)
        if unknown is not None or None in values:
            raise DistilflowError(f"task {name}: the {split} split has label {unknown!r}, which the train split never "
                                  f"has ({', '.join(labels[:10])}): fix the row or add examples of it to train")
        return {NEW_LABEL: [index[str(value)] for value in values]}

    kept = rows.select_columns([*dict.fromkeys([*config.text, config.label])])
    # into a new column, then renamed: a column called "label" would keep its string type
    converted = kept.map(convert, batched=True, desc=f"{name} {split}: labels")
    return converted.remove_columns(config.label).rename_column(NEW_LABEL, "label").select_columns([*config.text, "label"])


def _score(name: str, split: str, column: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DistilflowError(f"task {name}: the {split} split's {column!r} holds {str(value)[:40]!r}, not a number: "
                              "a regression task needs numeric labels (or kind: classification)") from None
