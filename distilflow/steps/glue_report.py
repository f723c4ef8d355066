"""The GLUE report of a set of results, published: size and speed measured, GLUE score and retention, logged to
the active MLflow run and written as files. What the glue_report stage and `distilflow glue` share."""

from __future__ import annotations

from pathlib import Path

from distilflow.base.devices import pick_device
from distilflow.base.pretrained import encoder_fingerprint
from distilflow.config import Params
from distilflow.evaluation.glue_results import GlueReport, TaskResult, build_report
from distilflow.evaluation.latency import ENCODER, machine, measure
from distilflow.evaluation.report import write_report
from distilflow.ops.tracking import Tracking


def publish(params: Params, tracking: Tracking, sources: dict[str, str], results: dict[str, dict[str, TaskResult]],
            run_id: str | None, output: Path, metrics_file: Path) -> GlueReport:
    """Measure size and speed, build the report, log it to the active MLflow run and write its files."""
    latency = params.glue.latency
    on_gpu = pick_device(params.glue.device).type == "cuda"
    speeds = measure(sources, latency.batch_sizes, latency.seq_length, latency.repeats, gpu=on_gpu)
    fingerprints = {role: encoder_fingerprint(name) for role, name in sources.items()}
    report = build_report(params.glue.model_dump(mode="json", exclude={"progress"}), results, sources, fingerprints, speeds)
    report.mlflow_run_id = run_id
    report.timing = {**machine(), "model": ENCODER}
    tracking.log_metrics(report.summary_metrics())
    for path in write_report(report, output, metrics_file).values():
        tracking.log_artifacts(path)
    return report
