"""Your own labelled task (params.yaml `tasks:`): a dataset and how to read it. The GLUE tasks are the built-in
entries of the same table (evaluation/task_table.py), so a user's task is fine-tuned, scored, exported and served
by the code that does GLUE's.

    tasks:
      tickets:
        data:
          files: {train: data/tickets/train.csv, report: data/tickets/test.csv}   # .csv .tsv .jsonl .json .parquet
          # or from the Hub: hub: my-org/tickets, config: null, splits: {train: train, report: validation}
        text: [subject, body]         # one column, or two (a pair)
        label: queue                  # strings or integers; the label set is read from the training split
        kind: classification          # or regression (a float label)
        metrics: [accuracy, f1_macro] # accuracy, f1 (binary), f1_macro, matthews_correlation, pearson, spearman
        selection: {holdout: 0.1}     # what recipes and students are chosen on: a held-out slice of train, or
                                      # {split: <a data split>}; never the report split
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from distilflow.config.strict import StrictModel

METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation", "pearson", "spearman")
CLASSIFICATION_METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearman")
FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class TaskData(StrictModel):
    """Where the rows are: local files (one per split) or a Hub dataset (its splits named)."""

    files: dict[str, Path] = {}  # split -> file; needs train and report
    hub: str | None = None  # a Hub dataset id (or a local dataset folder load_dataset reads)
    config: str | None = None  # the Hub dataset's configuration
    splits: dict[str, str] = {"train": "train", "report": "validation"}  # our split -> the Hub dataset's

    @model_validator(mode="after")
    def _one_source(self) -> TaskData:
        if bool(self.files) == bool(self.hub):
            raise ValueError("give the task's data as files: {train: ..., report: ...} or as hub: <dataset id>, "
                             "one of the two")
        named = self.files if self.files else self.splits
        missing = [split for split in ("train", "report") if split not in named]
        if missing:
            raise ValueError(f"the task's data has no {' or '.join(missing)} split: name the file (or Hub split) "
                             "trained on as train and the one scores are reported on as report")
        unknown = [str(path) for path in self.files.values() if path.suffix.lower() not in FILE_FORMATS]
        if unknown:
            raise ValueError(f"{unknown[0]} is not a file format read here: use {', '.join(FILE_FORMATS)}")
        return self


class TaskSelection(StrictModel):
    """The split recipes and students are chosen on: a seeded, stratified held-out slice of train by default."""

    split: str | None = None  # a split of the data (not report); None: the held-out slice
    holdout: float = Field(0.1, gt=0.0, lt=0.5)
    seed: int = 0


class TaskConfig(StrictModel):
    data: TaskData
    text: list[str] = Field(min_length=1, max_length=2)
    label: str = "label"
    kind: Literal["classification", "regression"] = "classification"
    metrics: list[Literal[METRICS]] = Field(["accuracy"], min_length=1)  # the task's score: their mean
    selection: TaskSelection = TaskSelection()

    @model_validator(mode="after")
    def _metrics_fit_the_kind(self) -> TaskConfig:
        allowed = CLASSIFICATION_METRICS if self.kind == "classification" else REGRESSION_METRICS
        wrong = [metric for metric in self.metrics if metric not in allowed]
        if wrong:
            raise ValueError(f"metric {wrong[0]} does not score a {self.kind} task: use {', '.join(allowed)}")
        if self.selection.split == "report":
            raise ValueError("selection.split is the report split: choose on another split (or the held-out slice), "
                             "never on the one scores are reported on")
        if self.label in self.text:
            raise ValueError(f"column {self.label} is both a text column and the label: name each once")
        return self
