"""The student's GLUE classifiers (one per task, kept by the GLUE stage) as ONNX fp32 and dynamic int8,
each scored on the task's dev set with the official metric next to PyTorch: the accuracy a deployed
int8 classifier really has, not only how close its logits are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import GlueTask, compute_metrics, task_score
from distilflow.export.onnx_export import LogitsOnly, export_onnx, quantize_int8, run_onnx, session

FP32, INT8 = "model.onnx", "model.int8.onnx"
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
