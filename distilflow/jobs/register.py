"""After the stages: the pipeline's student into the MLflow Model Registry as `challenger` (one version per
distinct student), tagged with its GLUE report, latency and the DVC versions of what made it. A pipeline run
with overrides ran as a DVC experiment: its student then comes out of the DVC cache (RunOutputs)."""

from __future__ import annotations

from distilflow.base import stage_env
from distilflow.config import Params
from distilflow.errors import DistilflowError
from distilflow.ops import dvc
from distilflow.ops.tracking import Tracking
from distilflow.steps.registration import Registration, register
from distilflow.steps.run_outputs import RunOutputs


def run(params: Params, run_id: str | None = None, experiment: str | None = None) -> Registration:
    """Register the run's student into `run_id` (default: the pipeline's run, else the student's distill run)."""
    if not params.tracking.enabled:
        raise DistilflowError("tracking.enabled is false: the registry lives in MLflow, so nothing can be registered")
    outputs = RunOutputs(params, experiment)
    report, hashes = outputs.report(), outputs.output_hashes()
    data_versions = {**dvc.source_hashes(params.versioning), **{f"{k}_artifact": v for k, v in hashes.items()}}
    export_metrics = outputs.metrics("export.json")
    export = (outputs.folder(params.paths.export), export_metrics) if export_metrics else None
    with Tracking(params.tracking) as tracking:
        version, created = register(params, tracking, outputs.folder(params.paths.student), report,
                                    run_id or stage_env.parent_run_id(), data_versions, export)
    return Registration(version, created, hashes)
