"""What a sweep's variant run on another machine (`distilflow sweep --pool`) left in the shared MLflow store: its
GLUE report (an artifact of its pipeline run) and its student (the LoggedModel its distill stage logged). The
sweep reads these instead of the DVC experiment, which lives on the worker's machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from distilflow.base.model_folder import MODEL_META
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import GlueReport
from distilflow.ops.tracking import Tracking

REPORT_ARTIFACT = "glue.json"  # the pipeline's GLUE report on its MLflow run (tasks/run_records.py)


def read_report(tracking: Tracking, run_id: str) -> GlueReport | None:
    """The GLUE report a pipeline run logged, or None when it has none (it failed before its report)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return GlueReport.model_validate(mlflow.artifacts.load_dict(f"runs:/{run_id}/{REPORT_ARTIFACT}"))
    except (MlflowException, OSError, ValueError):
        return None


def download_student(tracking: Tracking, run_id: str, destination: Path) -> Path:
    """The student of pipeline run `run_id` (its distill stage's LoggedModel) as a folder under `destination`,
    its meta naming that LoggedModel, so that registering it registers that model and logs no second copy."""
    import mlflow

    client = tracking.client()
    distill = client.search_runs([tracking.experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and "
                                 "tags.stage = 'distill'", max_results=1)
    models = client.search_logged_models([tracking.experiment_id], f"source_run_id = '{distill[0].info.run_id}'",
                                         max_results=1) if distill else []
    if not models:
        raise DistilflowError(f"pipeline run {run_id} logged no student (no distill run with a model): "
                              "its variant did not finish distilling")
    model_id = models[0].model_id
    shutil.rmtree(destination, ignore_errors=True)
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}/artifacts/student", dst_path=str(destination)))
    meta = json.loads((folder / MODEL_META).read_text())
    (folder / MODEL_META).write_text(json.dumps({**meta, "mlflow_model_id": model_id}, indent=2))
    return folder
