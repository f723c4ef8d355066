"""A task's student classifier to the edge (issue 44, item 4): ONNX fp32 (refused when it drifts from PyTorch) and
dynamic int8, each scored on the task's report split with its own metrics beside PyTorch, as the GLUE classifiers
are (export/classifiers.py). The int8 file is what gets served when it loses at most export.max_int8_glue_drop of
the score; otherwise the served model runs PyTorch, and the report says why. Sizes, and the CPU latency of the
teacher classifier, the student and its int8 file timed in turn under the one latency protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from transformers import AutoModelForSequenceClassification

from distilflow.base.model_folder import count_parameters
from distilflow.base.pretrained import load_tokenizer
from distilflow.config import ExportConfig
from distilflow.evaluation.glue_data import GlueTask
from distilflow.evaluation.latency import size_on_disk_bytes
from distilflow.export.checks import require_fp32_match
from distilflow.export.classifiers import FP32, INT8, dev_set, export_classifier
from distilflow.export.speed import task_speed


@dataclass
class TaskExport:
    metrics: dict[str, float]
    int8: Path | None  # the file to serve: None when int8 lost more than export.max_int8_glue_drop
    why_not_int8: str = ""


def export_task_student(classifier: Path, teacher, task: GlueTask, report: Dataset, max_length: int,
                        limits: ExportConfig, folder: Path) -> TaskExport:
    """`classifier` (the student's folder) as ONNX fp32 and int8 in `folder`, checked, sized and timed beside
    `teacher` (the teacher classifier's model)."""
    student = AutoModelForSequenceClassification.from_pretrained(classifier).eval()
    dev = dev_set(task, report, load_tokenizer(str(classifier)), max_length)
    metrics = export_classifier(student, task, dev, folder)
    require_fp32_match(metrics["onnx_fp32_max_abs_logit_diff"], limits, f"{task.name} student classifier")
    metrics.update({"parameters_student": float(count_parameters(student)),
                    "parameters_teacher": float(count_parameters(teacher)),
                    "size_mb_student_pytorch": size_on_disk_bytes(str(classifier)) / 1e6,
                    "size_mb_student_onnx_fp32": (folder / FP32).stat().st_size / 1e6,
                    "size_mb_student_onnx_int8": (folder / INT8).stat().st_size / 1e6,
                    **task_speed({"teacher": teacher.eval(), "student": student}, folder / INT8, limits.latency,
                                 limits.threads)})
    drop = metrics["score_pytorch"] - metrics["score_onnx_int8"]
    if drop > limits.max_int8_glue_drop:
        return TaskExport(metrics, None, f"int8 loses {100 * drop:.2f} points > export.max_int8_glue_drop "
                                         f"{100 * limits.max_int8_glue_drop:g}: served from PyTorch")
    return TaskExport(metrics, folder / INT8)
