"""A task's student classifier into the MLflow Model Registry as `distilflow-<task>`, alias challenger (once per
distinct weights), served from its int8 ONNX file when that passed its check (PyTorch otherwise), tagged with what
the promotion rule reads (the task's score and retention, latency, the settings that make scores comparable) and
promoted by that rule, as the pipeline's student is (ops/promotion_rule.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from distilflow.config import Params, RegistryConfig
from distilflow.evaluation.glue_results import COMPARABLE_SETTINGS
from distilflow.evaluation.task_data import REPORT, UserTask
from distilflow.export.task_export import TaskExport
from distilflow.ops import registry
from distilflow.ops.logged_model import log_classifier_model
from distilflow.ops.promotion_rule import SHAPE_TAG, TASK_RETENTION, TASK_SCORE, TASK_SETTING_TAG
from distilflow.ops.tracking import Tracking


def model_name(task: str) -> str:
    return f"distilflow-{task}"


def register_task_student(params: Params, tracking: Tracking, task: str, folder: Path, report: dict,
                          exported: TaskExport, user_task: UserTask, run_id: str | None) -> tuple[str | None, str]:
    """(version, what the promotion rule decided)."""
    if not tracking.enabled:
        return None, "tracking.enabled is false: nothing registered"
    classifier = folder / "classifier"
    served = exported.int8
    version, created = registry.register_once(
        model_name(task), _weights_hash(classifier),
        lambda: log_classifier_model(classifier, served, input_example(user_task), _numbers(report)),
        run_id, version_tags(params, task, report, served is not None), model_card(task, report))
    decision = registry.promote_by_policy(RegistryConfig(model_name=model_name(task), promotion=params.registry.promotion),
                                          str(version.version))
    status = "new, alias challenger" if created else "already registered"
    return str(version.version), f"{status}; champion {'moved' if decision.promote else 'unchanged'}: {decision.reason}"


def version_tags(params: Params, task: str, report: dict, int8: bool) -> dict[str, str]:
    recipe = params.tasks[task].recipe(params.glue)
    settings = {"metrics": ",".join(report["metrics"]), "data": report["data_hash"], "teacher": report["teacher_classifier"],
                **{key: str(getattr(recipe, key)) for key in COMPARABLE_SETTINGS if key != "max_train_examples"}}
    tags = {"task": task, TASK_SCORE: f"{report['student']['score']:.6f}",
            "teacher_fingerprint": report["teacher_fingerprint"],  # which weights taught it (task_data: which rows)
            **{TASK_SETTING_TAG.format(key): value for key, value in settings.items()},
            "served_format": "onnx_int8" if int8 else "pytorch", "latency_protocol": report["timing"]["protocol"],
            "latency_model": "student_onnx_int8" if int8 else "student_pytorch",
            SHAPE_TAG: f"{report['shape']['layers']}x{report['shape']['hidden_size']}"}
    if report["retention"] is not None:
        tags[TASK_RETENTION] = f"{report['retention']:.6f}"
    served = "student_onnx_int8" if int8 else "student_pytorch"
    for key, value in report["export"].items():
        if key.startswith("latency_ms_b") and key.endswith(served):
            tags[f"latency_ms_cpu_{key.removeprefix('latency_ms_').removesuffix('_' + served)}"] = f"{value:.3f}"
    return tags


def input_example(user_task: UserTask) -> list[dict]:
    row = user_task.splits[REPORT][0]
    columns = user_task.task.text_columns
    return [{"text": row[columns[0]], **({"text_pair": row[columns[1]]} if len(columns) > 1 else {})}]


def model_card(task: str, report: dict) -> str:
    student, teacher = report["student"], report["teacher"]
    retention = f"{report['retention']:.1%}" if report["retention"] is not None else "n/a"
    export = report["export"]
    return "\n".join([
        f"# distilflow student for task {task}", "",
        f"- **Teacher**: `{report['teacher_classifier']}`, score {teacher['score']:.4f} on the report split",
        f"- **Student**: {report['shape']['layers']} layers x {report['shape']['hidden_size']}, from "
        f"`{report['student_start']}`; score {student['score']:.4f} (per seed {student['per_seed']}), retention "
        f"{retention}; metrics {', '.join(report['metrics'])}",
        f"- **Size**: {export['parameters_student'] / 1e6:.1f}M parameters ({export['parameters_teacher'] / 1e6:.1f}M "
        f"the teacher's); int8 ONNX {export['size_mb_student_onnx_int8']:.1f} MB",
        f"- **Served from**: {report['served']} {report['why_not_int8']}".rstrip(),
    ])


def _numbers(report: dict) -> dict[str, float]:
    numbers = {"student_score": report["student"]["score"], "teacher_score": report["teacher"]["score"]}
    return numbers | ({"retention": report["retention"]} if report["retention"] is not None else {})


def _weights_hash(classifier: Path) -> str:
    digest = hashlib.sha256()
    for weights in sorted(classifier.glob("*.safetensors")):
        digest.update(weights.read_bytes())
    return digest.hexdigest()[:16]
