"""The nine GLUE tasks: where their data is, how to read it, and their official metrics.

Data comes from the Hub dataset `nyu-mll/glue` (or its offline mirror) or from a folder in the
original GLUE release format (`CoLA/train.tsv`, `SST-2/dev.tsv`, ...). Both give the same Hub schema:
text columns, an integer `label` (a float score for STS-B). Metrics are computed locally with
scikit-learn and SciPy.
"""

from __future__ import annotations

import csv
import hashlib
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, load_dataset
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from distilflow.base.pretrained import resolve
from distilflow.config import GlueConfig
from distilflow.errors import DistilflowError, first_line


@dataclass(frozen=True)
class GlueTask:
    name: str
    text_columns: tuple[str, ...]
    num_labels: int  # 1: regression (STS-B)
    metrics: tuple[str, ...]
    folder: str  # in the original GLUE release
    # evaluation name -> (Hub split, original .tsv file)
    evaluations: dict[str, tuple[str, str]] = field(default_factory=lambda: {"": ("validation", "dev.tsv")})
    # original .tsv layout: column index or header name for each text column and the label
    tsv_columns: tuple[str | int, ...] = ()
    tsv_header: bool = True
    label_names: tuple[str, ...] = ()  # string labels in the .tsv files, in Hub order

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


NLI_TWO_WAY = ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in [
        GlueTask("cola", ("sentence",), 2, ("matthews_correlation",), "CoLA",
                 tsv_columns=(3, 1), tsv_header=False),
        GlueTask("sst2", ("sentence",), 2, ("accuracy",), "SST-2", tsv_columns=("sentence", "label")),
        GlueTask("mrpc", ("sentence1", "sentence2"), 2, ("f1", "accuracy"), "MRPC",
                 tsv_columns=("#1 String", "#2 String", "Quality")),
        GlueTask("stsb", ("sentence1", "sentence2"), 1, ("pearson", "spearman"), "STS-B",
                 tsv_columns=("sentence1", "sentence2", "score")),
        GlueTask("qqp", ("question1", "question2"), 2, ("f1", "accuracy"), "QQP",
                 tsv_columns=("question1", "question2", "is_duplicate")),
        GlueTask("mnli", ("premise", "hypothesis"), 3, ("accuracy",), "MNLI",
                 evaluations={"m": ("validation_matched", "dev_matched.tsv"),
                              "mm": ("validation_mismatched", "dev_mismatched.tsv")},
                 tsv_columns=("sentence1", "sentence2", "gold_label"),
                 label_names=("entailment", "neutral", "contradiction")),
        GlueTask("qnli", ("question", "sentence"), 2, ("accuracy",), "QNLI",
                 tsv_columns=("question", "sentence", "label"), label_names=NLI_TWO_WAY),
        GlueTask("rte", ("sentence1", "sentence2"), 2, ("accuracy",), "RTE",
                 tsv_columns=("sentence1", "sentence2", "label"), label_names=NLI_TWO_WAY),
        GlueTask("wnli", ("sentence1", "sentence2"), 2, ("accuracy",), "WNLI",
                 tsv_columns=("sentence1", "sentence2", "label")),
    ]
}


def get_task(name: str) -> GlueTask:
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise DistilflowError(f"unknown GLUE task '{name}': choose from {', '.join(TASKS)} or 'all'") from None


def parse_task_list(text: str | list[str]) -> tuple[list[GlueTask], bool]:
    """'rte,mrpc' or ['rte'] or 'all' -> tasks, and whether the user asked for all of them."""
    names = [part.strip() for part in (text.split(",") if isinstance(text, str) else text) if part.strip()]
    if names == ["all"]:
        return list(TASKS.values()), True
    if not names:
        raise DistilflowError("no GLUE task given: name some (e.g. rte,mrpc) or 'all'")
    return [get_task(name) for name in names], False


def select_tasks(config: GlueConfig, requested: str | list[str] | None) -> list[GlueTask]:
    """The tasks to run: missing ones are an error when named, skipped with a warning under 'all'."""
    tasks, asked_for_all = parse_task_list(requested if requested is not None else config.tasks)
    asked_for_all = asked_for_all or len(tasks) == 9
    if not asked_for_all:
        return tasks
    available = [task for task in tasks if task_available(task, config.source)]
    for task in tasks:
        if task not in available:
            warnings.warn(f"GLUE task '{task.name}' is not in {config.source}: skipped", stacklevel=2)
    return available


# --- data ----------------------------------------------------------------------------------------
def is_release_folder(source: str) -> bool:
    """A folder laid out like the original GLUE release (task folders holding .tsv files)."""
    path = Path(source)
    return path.is_dir() and any((path / task.folder).is_dir() for task in TASKS.values())


def task_available(task: GlueTask, source: str) -> bool:
    if is_release_folder(source):
        return (Path(source) / task.folder / "train.tsv").is_file()
    local = Path(resolve(source))
    if local.is_dir():
        return (local / task.name).is_dir()
    return True  # a Hub id: only loading can tell


def load_task(task: GlueTask, source: str) -> dict[str, Dataset]:
    """{'train': ..., '<evaluation name>': ...} in the Hub schema, from the Hub/mirror or a release folder."""
    if not task_available(task, source):
        raise DistilflowError(f"GLUE task '{task.name}' is not in {source}: pick another task or data source")
    if is_release_folder(source):
        folder = Path(source) / task.folder
        splits = {"train": read_release_tsv(task, folder / "train.tsv")}
        for name, (_, tsv_file) in task.evaluations.items():
            splits[name] = read_release_tsv(task, folder / tsv_file)
        return splits
    try:
        hub = load_dataset(resolve(source), task.name)
    except Exception as error:  # DatasetNotFoundError, ValueError for a missing config, connection errors
        raise DistilflowError(
            f"GLUE task '{task.name}' could not be loaded from '{source}' ({str(error).splitlines()[0][:160]}): "
            "check glue.source"
        ) from None
    splits = {"train": hub["train"]}
    for name, (split, _) in task.evaluations.items():
        splits[name] = hub[split]
    return splits


SELECTION = "selection"  # the held-out slice of the training set that recipes and students are chosen on


def held_out_splits(task: GlueTask, train: Dataset, fraction: float, seed: int) -> dict[str, Dataset]:
    """`train` as the rows trained on and a held-out slice (SELECTION) to choose on, never the dev sets: drawn
    with `seed`, stratified by label (STS-B: by quintile of the score), both in their original row order."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(train["label"])
    strata = np.digitize(labels, np.quantile(labels, [0.2, 0.4, 0.6, 0.8])) if task.is_regression else labels
    kept, held = train_test_split(np.arange(len(train)), test_size=fraction, random_state=seed, stratify=strata)
    held_out = train.select(np.sort(held))
    return {"train": train.select(np.sort(kept)), SELECTION: held_out}


def task_data_hash(splits: dict[str, Dataset]) -> str:
    """A hash of the task's rows (every split, every column): changes when the data is re-pinned."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        table = splits[name].data.table
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(name.encode())
        digest.update(sink.getvalue())
    return digest.hexdigest()[:16]


def read_release_tsv(task: GlueTask, path: Path) -> Dataset:
    """One .tsv of the original release. Quotes are literal text in GLUE (QUOTE_NONE); MRPC has a BOM."""
    if not path.is_file():
        raise DistilflowError(f"GLUE file '{path}' is missing: the task '{task.name}' folder is incomplete")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DistilflowError(f"GLUE file '{path}' is not UTF-8 tab-separated text ({first_line(error)[:120]}): "
                              "replace it with the original release file") from None
    header, body = (rows[0], rows[1:]) if task.tsv_header and rows else ([], rows)
    missing = [c for c in task.tsv_columns if isinstance(c, str) and c not in header]
    if missing:
        raise DistilflowError(f"GLUE file '{path}' has no column {missing[0]!r} (its header: {header[:12]}): "
                              "replace it with the original release file")
    columns = [header.index(c) if isinstance(c, str) else c for c in task.tsv_columns]
    *text_indices, label_index = columns
    data: dict[str, list] = {name: [] for name in task.text_columns}
    data["label"] = []
    for line, row in enumerate(body, start=2 if task.tsv_header else 1):
        if len(row) <= max(columns):
            continue  # GLUE's own loaders skip malformed lines too (a handful in QQP/MNLI)
        for name, index in zip(task.text_columns, text_indices):
            data[name].append(row[index])
        data["label"].append(_label(task, row[label_index], path, line))
    if not data["label"]:
        raise DistilflowError(f"GLUE file '{path}' holds no usable rows: replace it with the original release file")
    return Dataset.from_dict(data)


def _label(task: GlueTask, raw: str, path: Path, line: int) -> int | float:
    try:
        if task.is_regression:
            return float(raw)
        if task.label_names:
            return task.label_names.index(raw)
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not 0 <= value < task.num_labels:
        expected = ", ".join(task.label_names) if task.label_names else f"0..{task.num_labels - 1}"
        raise DistilflowError(f"GLUE file '{path}' line {line}: unknown label {raw[:40]!r} (expected {expected}): "
                              "replace it with the original release file")
    return value


# --- metrics -------------------------------------------------------------------------------------
def compute_metrics(task: GlueTask, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's official metrics; `predictions` are logits (or scores for STS-B)."""
    if task.is_regression:
        scores = np.asarray(predictions, dtype=float).reshape(-1)
        return {"pearson": float(pearsonr(scores, labels)[0]), "spearman": float(spearmanr(scores, labels)[0])}
    predicted = np.asarray(predictions).argmax(-1) if np.ndim(predictions) > 1 else np.asarray(predictions)
    results = {}
    if task.metrics != ("matthews_correlation",):  # accuracy beside the others, as GLUE reports (CoLA: MCC only)
        results["accuracy"] = float(accuracy_score(labels, predicted))
    if "f1" in task.metrics:
        results["f1"] = float(f1_score(labels, predicted))
    if "f1_macro" in task.metrics:  # every label counts alike, however rare (a user's task with several labels)
        results["f1_macro"] = float(f1_score(labels, predicted, average="macro",
                                             labels=np.arange(task.num_labels), zero_division=0))
    if "matthews_correlation" in task.metrics:
        results["matthews_correlation"] = float(matthews_corrcoef(labels, predicted))
    return results


def task_score(task: GlueTask, results: dict[str, dict[str, float]]) -> float:
    """One number per task, as the GLUE leaderboard does: the mean of its metrics on the dev sets (MNLI: of m
    and mm); a held-out selection slice, when there is one, is not among them."""
    return statistics.mean(results[evaluation][name] for evaluation in task.evaluations for name in task.metrics)


def selection_score(task: GlueTask, results: dict[str, dict[str, float]]) -> float | None:
    """The same number on the held-out selection slice, when the task was scored on one."""
    if SELECTION not in results:
        return None
    return statistics.mean(results[SELECTION][name] for name in task.metrics)
