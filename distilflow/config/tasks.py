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
        teacher_classifier: models/ticket-bert   # your fine-tuned AutoModelForSequenceClassification (or Hub id)
        student: teacher_classifier   # a copy of it with student.n_layers of its layers (and student's width), or
                                      # distilled: the pipeline's distilled student (paths.student)
        finetune: {epochs: 3}         # glue.* fine-tuning settings for this task (the rest are glue's); the
                                      # full training set unless max_train_examples is given
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from distilflow.config.evaluation import GlueConfig
from distilflow.config.strict import StrictModel

METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation", "pearson", "spearman")
CLASSIFICATION_METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearman")
TASK_NAME = r"^[a-z0-9][a-z0-9_-]*$"  # it names a DVC stage (task@<name>) and a registered model (distilflow-<name>)
NOT_PER_TASK = ("tasks", "source", "selection")  # GLUE's own: a task names its data and selection itself
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
    teacher_classifier: str | None = None  # folder or Hub id: a sequence classifier fine-tuned on this task (needed)
    student: Literal["teacher_classifier", "distilled"] = "teacher_classifier"
    finetune: dict[str, Any] = {}  # glue.* fine-tuning settings for this task (epochs, learning_rates, seeds, ...)

    def recipe(self, glue: GlueConfig) -> GlueConfig:
        """The task's fine-tuning: glue's settings, the full training set, and this task's `finetune` on top."""
        wrong = [key for key in self.finetune if key in NOT_PER_TASK]
        if wrong:
            raise ValueError(f"finetune.{wrong[0]} is GLUE's: a task sets its data and selection itself (data:, "
                             "selection:)")
        base = glue.model_dump(exclude=set(NOT_PER_TASK)) | {"max_train_examples": None}
        try:
            return GlueConfig.model_validate(base | self.finetune)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise ValueError(f"finetune.{where}: {problem['msg']} (the keys are glue's: epochs, learning_rates, "
                             "seeds, batch_size, max_seq_length, distillation, ...)") from None

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
