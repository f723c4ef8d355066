"""A student into the MLflow Model Registry as `challenger` (one version per distinct student), tagged with its
GLUE report, latency and the DVC versions of what made it, with its ONNX exports attached when there are some.
What `distilflow register` (the pipeline's student) and a sweep (its winner, out of its DVC experiment) share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distilflow.base.model_folder import read_model_meta
from distilflow.config import Params
from distilflow.evaluation.glue_results import GlueReport
from distilflow.ops import promotion_rule, registry, run_summary
from distilflow.ops.tracking import Tracking


@dataclass
class Registration:
    version: str
    created: bool  # False: these weights were registered before, nothing new
    output_hashes: dict[str, str]  # DVC md5 of the student and teacher folders (dvc.lock)


def register(params: Params, tracking: Tracking, student: Path, report: GlueReport, run_id: str | None,
             data_versions: dict[str, str], export: tuple[Path, dict[str, float]] | None = None) -> tuple[str, bool]:
    """`student` (a folder distill wrote) as a version of params.registry.model_name, alias challenger.
    `export`: the folder of its ONNX files and their figures (metrics/export.json), attached to the version."""
    student_meta = read_model_meta(student, made_by="distill")
    run_id = run_id or student_meta.get("mlflow_run_id")
    tags = {**promotion_rule.version_tags(report, data_versions), **filter_tags(params, student_meta)}
    version, created = registry.register_student(tracking, params.registry, student, run_id, tags,
                                                 run_summary.model_card(params, report, student_meta, data_versions))
    if export is not None and (export[0] / "student.int8.onnx").is_file() and export[1]:
        registry.attach_export(params.registry.model_name, str(version.version), export[0], export[1])
    return str(version.version), created


def filter_tags(params: Params, student_meta: dict) -> dict[str, str]:
    """What people filter versions on in the registry UI (the rule reads only the numeric tags)."""
    loss = params.distill.loss
    shape = student_meta.get("shape", {})
    return {"teacher": params.teacher.model, "student_layers": str(len(student_meta.get("teacher_layers", []))),
            **({promotion_rule.SHAPE_TAG: f"{shape['layers']}x{shape['hidden_size']}"} if shape else {}),
            "distill_temperature": f"{loss.temperature:g}",
            "distill_alphas": f"ce {loss.alpha_ce:g} / mlm {loss.alpha_mlm:g} / cos {loss.alpha_cos:g}"}
