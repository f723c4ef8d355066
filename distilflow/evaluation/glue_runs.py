"""GLUE evaluation of one model on one task: fine-tuned over seeds (and a learning-rate grid), the
median reported. A baseline that does not change between runs (the teacher) can be cached, keyed on
everything that decides its scores.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
import transformers

from distilflow.config import GlueConfig
from distilflow.data.sources import encoder_fingerprint
from distilflow.evaluation.finetune import finetune_and_evaluate
from distilflow.evaluation.glue_tasks import GlueTask, load_task, task_data_hash, task_score
from distilflow.evaluation.report import TaskResult
from distilflow.ops.files import write_text
from distilflow.ops.hashing import code_version, fingerprint

CACHE_VERSION = "glue-v2"


def evaluate_task(model_name: str, task: GlueTask, config: GlueConfig, cache_dir: Path | None = None) -> TaskResult:
    """Fine-tune over the lr grid x seeds; pick the lr with the best median dev score.

    With `cache_dir`, a result is reused only for the same weights, task data, settings, code and
    library versions: re-pinned data or changed fine-tuning code computes it again."""
    splits = load_task(task, config.source)
    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"{task.name}-{cache_key(model_name, task, splits, config)}.json"
        if cache_file.is_file():
            return TaskResult.model_validate_json(cache_file.read_text())
    if config.max_train_examples and len(splits["train"]) > config.max_train_examples:
        splits["train"] = splits["train"].shuffle(seed=0).select(range(config.max_train_examples))
    runs = []
    for learning_rate in config.learning_rates:
        for seed in config.seeds:
            metrics = finetune_and_evaluate(model_name, task, splits, config, seed, learning_rate)
            runs.append({"learning_rate": learning_rate, "seed": seed, "metrics": metrics,
                         "score": task_score(task, metrics)})
    result = summarize(task, runs)
    if cache_file is not None:
        write_text(cache_file, result.model_dump_json(indent=2))
    return result


def cache_key(model_name: str, task: GlueTask, splits, config: GlueConfig) -> str:
    settings = config.model_dump(mode="json", exclude={"tasks", "progress", "latency"})
    return fingerprint(CACHE_VERSION, encoder_fingerprint(model_name), task.name, task_data_hash(splits), settings,
                       code_version(__name__), transformers.__version__, torch.__version__)


def summarize(task: GlueTask, runs: list[dict]) -> TaskResult:
    by_lr: dict[float, list[dict]] = {}
    for run in runs:
        by_lr.setdefault(run["learning_rate"], []).append(run)
    best_lr = max(by_lr, key=lambda lr: statistics.median(run["score"] for run in by_lr[lr]))
    chosen = by_lr[best_lr]
    medians = {
        evaluation: {name: statistics.median(run["metrics"][evaluation][name] for run in chosen)
                     for name in chosen[0]["metrics"][evaluation]}
        for evaluation in chosen[0]["metrics"]
    }
    return TaskResult(task=task.name, metrics=medians, score=task_score(task, medians), learning_rate=best_lr,
                      runs=runs)
