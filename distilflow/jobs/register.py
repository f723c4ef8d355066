"""After the stages: the student into the MLflow Model Registry as `challenger` (one version per
distinct student), tagged with its GLUE report, latency and the DVC versions of what made it."""

from __future__ import annotations

from dataclasses import dataclass

from distilflow.base import stage_env
from distilflow.base.files import read_json
from distilflow.base.model_folder import read_model_meta
from distilflow.config import Params
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import read_report
from distilflow.ops import dvc, promotion_rule, registry, run_summary
from distilflow.ops.tracking import Tracking


@dataclass
class Registration:
    version: str
    created: bool  # False: these weights were registered before, nothing new
    output_hashes: dict[str, str]  # DVC md5 of the student and teacher folders (dvc.lock)


def run(params: Params, run_id: str | None = None) -> Registration:
    """Register paths.student into `run_id` (default: the pipeline's run, else the student's distill run)."""
    if not params.tracking.enabled:
        raise DistilflowError("tracking.enabled is false: the registry lives in MLflow, so nothing can be registered")
    report_file = params.paths.metrics / "glue.json"
    if not report_file.is_file():
        raise DistilflowError(f"no GLUE report at {report_file}: run `distilflow glue-report` (or `dvc repro`) first")
    report = read_report(report_file)
    student_meta = read_model_meta(params.paths.student, made_by="distill")
    outputs = dvc.output_hashes({"student": params.paths.student, "teacher": params.paths.teacher})
    data_versions = {**dvc.source_hashes(params.versioning), **{f"{k}_artifact": v for k, v in outputs.items()}}
    run_id = run_id or stage_env.parent_run_id() or student_meta.get("mlflow_run_id")
    tags = {**promotion_rule.version_tags(report, data_versions), **filter_tags(params, student_meta)}
    with Tracking(params.tracking) as tracking:
        version, created = registry.register_student(tracking, params.registry, params.paths.student, run_id, tags,
                                                     run_summary.model_card(params, report, student_meta, data_versions))
        export_metrics = read_json(params.paths.metrics / "export.json")
        if export_metrics and (params.paths.export / "student.int8.onnx").is_file():
            registry.attach_export(params.registry.model_name, str(version.version), params.paths.export, export_metrics)
    return Registration(str(version.version), created, outputs)


def filter_tags(params: Params, student_meta: dict) -> dict[str, str]:
    """What people filter versions on in the registry UI (the rule reads only the numeric tags)."""
    loss = params.distill.loss
    return {"teacher": params.teacher.model, "student_layers": str(len(student_meta.get("teacher_layers", []))),
            "distill_temperature": f"{loss.temperature:g}",
            "distill_alphas": f"ce {loss.alpha_ce:g} / mlm {loss.alpha_mlm:g} / cos {loss.alpha_cos:g}"}
