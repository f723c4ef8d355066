"""The student's GLUE classifiers (one per task, kept by the GLUE stage) as ONNX fp32 and dynamic int8,
each scored on the task's dev set with the official metric next to PyTorch: the accuracy a deployed
int8 classifier really has, not only how close its logits are."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from distilflow.base.pretrained import load_tokenizer
from distilflow.config import ExportConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import GlueTask, compute_metrics, load_task, parse_task_list, task_score
from distilflow.evaluation.glue_results import classifier_folder
from distilflow.export.checks import require_fp32_match, require_int8_glue
from distilflow.export.onnx_export import LogitsOnly, export_onnx, quantize_int8, run_onnx, session

logger = logging.getLogger(__name__)
FP32, INT8 = "model.onnx", "model.int8.onnx"
FORMATS = ("pytorch", "onnx_fp32", "onnx_int8")
CHECK_BATCH = 32


@dataclass
class DevSet:
    batches: list[dict[str, torch.Tensor]]  # padded to the longest in each batch
    labels: np.ndarray


def dev_set(task: GlueTask, split: Dataset, tokenizer, max_length: int) -> DevSet:
    """The dev set encoded as fine-tuning encoded it: every tokenizer output (a pair's token_type_ids too)."""
    texts = [split[column] for column in task.text_columns]
    batches = []
    for start in range(0, len(split), CHECK_BATCH):
        chunk = [column[start:start + CHECK_BATCH] for column in texts]
        batches.append(dict(tokenizer(*chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")))
    if not batches:
        raise DistilflowError(f"the {task.name} dev set is empty: nothing to check the classifier export on")
    return DevSet(batches, np.asarray(split["label"]))


@torch.inference_mode()
def pytorch_logits(model: torch.nn.Module, dev: DevSet) -> np.ndarray:
    forward = LogitsOnly(model.eval())
    return np.concatenate([forward.on(batch).numpy() for batch in dev.batches])


def onnx_logits(path: Path, dev: DevSet) -> np.ndarray:
    runner = session(path)
    return np.concatenate([run_onnx(runner, batch) for batch in dev.batches])


def export_classifier(model: torch.nn.Module, task: GlueTask, dev: DevSet, folder: Path) -> dict[str, float]:
    """Both exports into `folder`, with the dev score of each format and how far each is from PyTorch."""
    reference = pytorch_logits(model, dev)
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, dev.batches[0], folder / FP32)
    int8 = quantize_int8(fp32, folder / INT8)
    metrics = {"score_pytorch": _score(task, reference, dev.labels)}
    for name, path in (("onnx_fp32", fp32), ("onnx_int8", int8)):
        exported = onnx_logits(path, dev)
        metrics[f"score_{name}"] = _score(task, exported, dev.labels)
        metrics[f"{name}_max_abs_logit_diff"] = float(np.abs(reference - exported).max())
        if not task.is_regression:  # the label each format predicts
            metrics[f"{name}_label_agreement"] = float((reference.argmax(-1) == exported.argmax(-1)).mean())
    return metrics


def _score(task: GlueTask, logits: np.ndarray, labels: np.ndarray) -> float:
    return task_score(task, {"": compute_metrics(task, logits, labels)})


@dataclass
class ExportedClassifiers:
    metrics: dict[str, float]  # classifier_<task>_<figure>, and the mean dev score of each format
    first: tuple | None  # (model, its folder, its exports' folder): the one whose speed is measured


def export_task_classifiers(tasks: list[str], glue_source: str, max_seq_length: int, glue_dir: Path,
                            limits: ExportConfig, folder: Path) -> ExportedClassifiers:
    """Each of `tasks`' classifiers the GLUE stages kept (glue_dir/classifiers/<task>), exported into folder/<task>
    and scored on its dev set in every format; an fp32 export that drifts, or int8 classifiers that lose more
    than export.max_int8_glue_drop on average, are refused."""
    from transformers import AutoModelForSequenceClassification

    metrics: dict[str, float] = {}
    scores: dict[str, list[float]] = {name: [] for name in FORMATS}
    first = None
    for task in parse_task_list(tasks)[0]:
        source = classifier_folder(glue_dir, task.name)
        if not (source / "model.safetensors").is_file():
            logger.warning("export: no %s classifier in %s (run `distilflow glue-task %s`): skipped", task.name, source,
                           task.name)
            continue
        model = AutoModelForSequenceClassification.from_pretrained(source)
        evaluation = next(iter(task.evaluations))  # MNLI: matched
        dev = dev_set(task, load_task(task, glue_source)[evaluation], load_tokenizer(str(source)), max_seq_length)
        task_metrics = export_classifier(model, task, dev, folder / task.name)
        require_fp32_match(task_metrics["onnx_fp32_max_abs_logit_diff"], limits, f"{task.name} classifier")
        metrics.update({f"classifier_{task.name}_{key}": value for key, value in task_metrics.items()})
        for name in FORMATS:
            scores[name].append(task_metrics[f"score_{name}"])
        first = first or (model, source, folder / task.name)
    if first is not None:
        for name, values in scores.items():
            metrics[f"classifier_glue_score_{name}"] = sum(values) / len(values)
        require_int8_glue(metrics["classifier_glue_score_pytorch"], metrics["classifier_glue_score_onnx_int8"], limits)
    return ExportedClassifiers(metrics, first)
