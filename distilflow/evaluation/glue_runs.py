"""GLUE evaluation of one model on one task: fine-tuned over seeds (and a learning-rate grid), the
median reported. A baseline that does not change between runs (the teacher) can be cached, keyed on
everything that decides its scores, with its predictions on the training set: the soft targets of
task-specific distillation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import torch
import transformers
from datasets import Dataset

from distilflow.base.devices import pick_device
from distilflow.base.files import replace_folder, write_text
from distilflow.base.hashing import code_version, fingerprint
from distilflow.base.model_folder import MODEL_META
from distilflow.base.pretrained import encoder_fingerprint
from distilflow.config import GlueConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.finetune import FineTuned, finetune_and_evaluate
from distilflow.evaluation.glue_data import (
    GlueTask,
    held_out_splits,
    load_task,
    selection_score,
    task_data_hash,
    task_score,
)
from distilflow.evaluation.glue_results import TaskResult
from distilflow.evaluation.task_distillation import load_soft_targets, save_soft_targets, soft_targets_file

logger = logging.getLogger(__name__)
CACHE_VERSION = "glue-v2"
OUTCOME = "outcome.json"  # a finished fine-tuning's dev metrics, beside its training-set logits
CHECKPOINT_EVERY = 100  # steps: what a killed fine-tuning can lose
# Modules (and packages) whose source cannot change a score: the settings' values are in the key, not
# config/'s code; errors, file writing and hashing do not touch a number. Editing them keeps the recorded baselines.
SCORE_NEUTRAL_MODULES = ("distilflow.config", "distilflow.errors", "distilflow.base.files", "distilflow.base.hashing")


def evaluate_task(model_name: str, task: GlueTask, config: GlueConfig, cache_dir: Path | None = None,
                  soft_targets: np.ndarray | None = None, keep_classifier: Path | None = None,
                  records_dir: Path | None = None, checkpoints: Path | None = None,
                  splits: dict[str, Dataset] | None = None) -> TaskResult:
    """Fine-tune over the lr grid x seeds; pick the lr with the best median dev score.

    With `cache_dir`, a result is reused only for the same weights, task data, settings, code and
    library versions: re-pinned data or changed fine-tuning code computes it again. The cached result
    comes with the soft targets of its selected lr's first seed (`baseline_soft_targets`).
    `records_dir` holds baselines recorded in the repository, copied into the cache when it lacks them.
    `soft_targets` (the teacher's, on this training set) turn on task-specific distillation;
    `keep_classifier` keeps the first seed's classifier of the selected lr there.
    `checkpoints` (a folder distilflow owns): each fine-tuning saves its state there every 100 steps and
    each finished one its outcome, so a killed run resumes where it was; only a run of the same weights,
    data, settings, code and soft targets resumes them (a key names the folder; other keys are cleared).
    `splits`: a user's task's rows (evaluation/task_data.py); GLUE's are read from config.source."""
    splits = task_splits(task, config) if splits is None else splits
    cache_file = None
    if cache_dir is not None:
        cache_file = baseline_file(cache_dir, model_name, task, splits, config)
        if not cache_file.is_file() and records_dir is not None:
            _copy_baseline(records_dir / cache_file.name, cache_file)
        if cache_file.is_file():
            return TaskResult.model_validate_json(cache_file.read_text())
        logger.info(why_fine_tuned(model_name, task, records_dir, cache_file.name))
    runs, train_logits, kept = [], {}, {}
    resumable = None if checkpoints is None else resumable_folder(checkpoints, model_name, task, splits, config,
                                                                  soft_targets)
    for learning_rate in config.learning_rates:
        for index, seed in enumerate(config.seeds):
            first_seed = index == 0
            save_to = None
            if keep_classifier is not None and first_seed:
                save_to = keep_classifier.with_name(f"{keep_classifier.name}.lr{learning_rate:g}")
                kept[learning_rate] = save_to
            predict_train = cache_file is not None and first_seed
            folder = None if resumable is None else resumable / f"lr{learning_rate:g}-seed{seed}"
            outcome = finished_outcome(folder, predict_train, save_to)
            if outcome is None:
                outcome = finetune_and_evaluate(model_name, task, splits, config, seed, learning_rate,
                                                soft_targets=soft_targets, predict_train=predict_train, save_to=save_to,
                                                checkpoints=None if folder is None else folder / "trainer",
                                                checkpoint_every=CHECKPOINT_EVERY)
                keep_outcome(folder, outcome)
            if outcome.train_logits is not None:
                train_logits[learning_rate] = outcome.train_logits
            runs.append({"learning_rate": learning_rate, "seed": seed, "metrics": outcome.metrics,
                         "score": task_score(task, outcome.metrics),
                         "selection_score": selection_score(task, outcome.metrics)})
    result = summarize(task, runs)
    if kept:
        _keep_selected(kept, result.learning_rate, keep_classifier)
    if cache_file is not None:
        save_soft_targets(soft_targets_file(cache_file), train_logits[result.learning_rate])
        write_text(cache_file, result.model_dump_json(indent=2))
    if resumable is not None:
        shutil.rmtree(resumable, ignore_errors=True)
    return result


def why_fine_tuned(model_name: str, task: GlueTask, records_dir: Path | None, key_file: str) -> str:
    """Why a baseline is fine-tuned now rather than read: what a user waiting for it wants to know."""
    recorded = sorted(records_dir.glob(f"{task.name}-*.json")) if records_dir is not None and records_dir.is_dir() else []
    if recorded:
        return (f"{task.name}: fine-tuning the baseline {model_name} now: the {len(recorded)} recorded in {records_dir} "
                f"are for other weights, data, settings or fine-tuning code (this run's key: {key_file}); "
                "`distilflow glue --record` keeps it for the next machine")
    return f"{task.name}: fine-tuning the baseline {model_name} now (none recorded; cached afterwards)"


def resumable_folder(checkpoints: Path, model_name: str, task: GlueTask, splits, config: GlueConfig,
                     soft_targets: np.ndarray | None) -> Path:
    """checkpoints/<key>: the key holds everything that decides the scores, the student's task distillation and
    its soft targets too. Folders of other keys (an older student, other settings) would never resume: cleared."""
    targets = None if soft_targets is None else hashlib.sha256(np.ascontiguousarray(soft_targets).tobytes()).hexdigest()
    key = fingerprint(cache_key(model_name, task, splits, config), config.distillation.model_dump(mode="json"), targets)
    if checkpoints.is_dir():
        for stale in checkpoints.iterdir():
            if stale.name != key and re.fullmatch(r"[0-9a-f]{16}", stale.name):  # only the folders named here
                shutil.rmtree(stale, ignore_errors=True)
    return checkpoints / key


def finished_outcome(folder: Path | None, predict_train: bool, save_to: Path | None) -> FineTuned | None:
    """A fine-tuning an earlier attempt finished, with what this one needs of it (logits, the classifier)."""
    if folder is None or not (folder / OUTCOME).is_file():
        return None
    logits = folder / "train_logits.npy"
    if (predict_train and not logits.is_file()) or (save_to is not None and not (save_to / MODEL_META).is_file()):
        return None
    return FineTuned(json.loads((folder / OUTCOME).read_text()), np.load(logits) if logits.is_file() else None)


def keep_outcome(folder: Path | None, outcome: FineTuned) -> None:
    """The outcome first, then its trainer checkpoints go: a kill between the two loses nothing."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    if outcome.train_logits is not None:
        np.save(folder / "train_logits.npy", outcome.train_logits)
    write_text(folder / OUTCOME, json.dumps(outcome.metrics))
    shutil.rmtree(folder / "trainer", ignore_errors=True)


def record_baseline(model_name: str, task: GlueTask, config: GlueConfig, cache_dir: Path, records_dir: Path) -> Path:
    """Copy a cached baseline (result and soft targets) into `records_dir`, to be committed."""
    cached = baseline_file(cache_dir, model_name, task, task_splits(task, config), config)
    if not cached.is_file():
        raise DistilflowError(f"no cached {task.name} baseline of {model_name} with these settings to record: "
                              "run `distilflow glue` with the same --teacher and settings first")
    _copy_baseline(cached, records_dir / cached.name)
    return records_dir / cached.name


def _copy_baseline(source: Path, target: Path) -> None:
    """The result file last: a baseline counts as present only when its soft targets are there too."""
    if not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if soft_targets_file(source).is_file():
        shutil.copyfile(soft_targets_file(source), soft_targets_file(target))
    write_text(target, source.read_text())


def baseline_soft_targets(model_name: str, task: GlueTask, config: GlueConfig, cache_dir: Path,
                          records_dir: Path | None = None) -> np.ndarray:
    """The fine-tuned baseline's logits on the (capped) training set, in its row order: from the cache,
    or from one fine-tuning run at its selected lr and first seed when an older cache lacks them."""
    splits = task_splits(task, config)
    cache_file = baseline_file(cache_dir, model_name, task, splits, config)
    targets_file = soft_targets_file(cache_file)
    if not targets_file.is_file():
        result = evaluate_task(model_name, task, config, cache_dir, records_dir=records_dir)
        if not targets_file.is_file():
            outcome = finetune_and_evaluate(model_name, task, splits, config, config.seeds[0], result.learning_rate,
                                            predict_train=True)
            save_soft_targets(targets_file, outcome.train_logits)
    return load_soft_targets(targets_file, len(splits["train"]))


def task_splits(task: GlueTask, config: GlueConfig) -> dict[str, Dataset]:
    """The task's splits, the training set capped for quick runs: the same rows in the same order for
    teacher and student (the soft targets follow that order). With glue.selection.holdout, a held-out
    slice of the training set is scored beside the dev sets, and is the one that chooses."""
    splits = load_task(task, config.source)
    if config.selection.holdout:
        splits.update(held_out_splits(task, splits["train"], config.selection.holdout, config.selection.seed))
    train = splits["train"]
    if config.max_train_examples and len(train) > config.max_train_examples:
        splits["train"] = train.shuffle(seed=0).select(range(config.max_train_examples))
    return splits


def baseline_file(cache_dir: Path, model_name: str, task: GlueTask, splits, config: GlueConfig) -> Path:
    return cache_dir / f"{task.name}-{cache_key(model_name, task, splits, config)}.json"


def _keep_selected(kept: dict[float, Path], selected_lr: float, destination: Path) -> None:
    """The classifier of the selected lr becomes `destination`; the grid's others go."""
    replace_folder(destination, lambda staging: shutil.copytree(kept[selected_lr], staging, dirs_exist_ok=True),
                   marker=MODEL_META)
    for folder in kept.values():
        shutil.rmtree(folder, ignore_errors=True)


def cache_key(model_name: str, task: GlueTask, splits, config: GlueConfig) -> str:
    # the student's own recipe (task distillation, its epochs) does not change the baseline's fine-tuning
    settings = config.model_dump(mode="json", exclude={"tasks", "progress", "latency", "distillation", "student_epochs"})
    # The device it runs on (a GPU fine-tunes in bf16) and torch's release, not its build: PyPI's CUDA build of
    # torch 2.13.0 on a machine without a GPU computes what the CPU build computes.
    runtime = (pick_device(config.device).type, torch.__version__.split("+")[0], transformers.__version__)
    return fingerprint(CACHE_VERSION, encoder_fingerprint(model_name), task.name, task_data_hash(splits), settings,
                       code_version(__name__, ignore=SCORE_NEUTRAL_MODULES), *runtime)


def summarize(task: GlueTask, runs: list[dict]) -> TaskResult:
    by_lr: dict[float, list[dict]] = {}
    for run in runs:
        by_lr.setdefault(run["learning_rate"], []).append(run)
    # chosen on the held-out selection slice when there is one, never on the dev sets reported
    chooser = "selection_score" if runs[0].get("selection_score") is not None else "score"
    best_lr = max(by_lr, key=lambda lr: statistics.median(run[chooser] for run in by_lr[lr]))
    chosen = by_lr[best_lr]
    medians = {
        evaluation: {name: statistics.median(run["metrics"][evaluation][name] for run in chosen)
                     for name in chosen[0]["metrics"][evaluation]}
        for evaluation in chosen[0]["metrics"]
    }
    return TaskResult(task=task.name, metrics=medians, score=task_score(task, medians),
                      selection_score=selection_score(task, medians), learning_rate=best_lr,
                      runs=runs)
