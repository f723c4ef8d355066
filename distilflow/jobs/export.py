"""`distilflow export`: the student (fill-mask) as ONNX fp32 and dynamic int8 in paths.export, each
checked against PyTorch on held-out sequences with fixed masks and refused past params.yaml's
tolerances; sizes and CPU latency of teacher and student in PyTorch and of both exports, side by side
(metrics/export.json, export.md). Then the student's GLUE classifiers (paths.glue/classifiers/<task>)
the same way into paths.export/classifiers/<task>, scored on each task's dev set in every format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distilflow.base.files import exclusive, replace_folder, write_json, write_text
from distilflow.base.pretrained import load_masked_lm, load_tokenizer, require_length_fits
from distilflow.config import Params
from distilflow.evaluation.latency import machine
from distilflow.export.checks import check_set, require_fp32_match, require_int8_accuracy
from distilflow.export.classifiers import export_task_classifiers
from distilflow.export.onnx_export import compare, export_onnx, quantize_int8
from distilflow.export.speed import classifier_speed, fill_mask_speed
from distilflow.export.summary import render
from distilflow.ops.tracking import Tracking

EXPORT_META = "export.json"
FP32, INT8 = "student.onnx", "student.int8.onnx"


@dataclass
class ExportResult:
    folder: Path
    metrics: dict[str, float]


def run(params: Params) -> ExportResult:
    paths, limits = params.paths, params.export
    require_length_fits(str(paths.student), "student", {"export.latency.seq_length": limits.latency.seq_length})
    with exclusive(paths.export, params.orchestration.lock_wait_seconds), \
            Tracking(params.tracking) as tracking, tracking.run("export", tags={"stage": "export"}):
        student, _ = load_masked_lm(str(paths.student), role="student")
        batches, masked = check_set(paths.prepared, limits.check_sequences, load_tokenizer(str(paths.student)))
        metrics: dict[str, float] = {}

        def fill(staging: Path) -> None:
            fp32 = export_onnx(student, batches[0], staging / FP32)
            fp32_check = compare(fp32, student, batches, masked)
            require_fp32_match(fp32_check.max_abs_logit_diff, limits, "export")
            int8 = quantize_int8(fp32, staging / INT8)
            int8_check = compare(int8, student, batches, masked)
            require_int8_accuracy(int8_check, limits)
            teacher, _ = load_masked_lm(str(paths.teacher), role="teacher")
            metrics.update({**fp32_check.as_metrics("onnx_fp32"), **int8_check.as_metrics("onnx_int8"),
                            **fill_mask_speed(teacher, student, {"teacher": paths.teacher, "student": paths.student},
                                              {"onnx_fp32": fp32, "onnx_int8": int8}, limits.latency, limits.threads)})
            classifiers = export_task_classifiers(params.glue.tasks, params.glue.source, params.glue.max_seq_length,
                                                  paths.glue, limits, staging / "classifiers")
            metrics.update(classifiers.metrics)
            if classifiers.first is not None:
                metrics.update(classifier_speed(*classifiers.first, limits.latency, limits.threads))
            write_json(staging / EXPORT_META, {"metrics": metrics, "student": str(paths.student), "timing": machine()})
            write_text(staging / "export.md", render(metrics, params))

        replace_folder(paths.export, fill, marker=EXPORT_META)
        tracking.log_metrics(metrics)
        tracking.log_artifacts(paths.export / "export.md")
    write_json(paths.metrics / "export.json", metrics)
    return ExportResult(paths.export, metrics)
