"""Where things go and how runs are kept: paths, DVC pins, MLflow tracking, the registry, Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from distilflow.config.strict import StrictModel


class PathsConfig(StrictModel):
    prepared: Path = Path("artifacts/prepared")
    teacher: Path = Path("artifacts/teacher")  # the complete masked-LM teacher that distillation uses
    student: Path = Path("artifacts/student")
    checkpoints: Path = Path("artifacts/checkpoints")
    glue: Path = Path("artifacts/glue")
    export: Path = Path("artifacts/export")
    metrics: Path = Path("metrics")
    # Teacher baselines kept in the repository (`distilflow glue --record`), read when the cache lacks one
    glue_baselines: Path = Path("baselines/glue")
    tasks: Path = Path("artifacts/tasks")  # each of your tasks' teacher targets, students, report and exports
    sweeps: Path = Path("artifacts/sweeps")  # each sweep's logs, report and winning student (distilflow sweep)


class DataSourceConfig(StrictModel):
    """One input pinned by DVC: copied from `url` (a local folder or any URL `dvc import-url` takes) or
    downloaded from the Hub repository `hub`, into `path` inside the repo, its hash in `<path>.dvc`."""

    path: Path
    url: str | None = None
    hub: str | None = None
    hub_type: Literal["model", "dataset"] = "model"
    include: list[str] | None = None  # Hub files to fetch (glob patterns); None = the whole repository

    @model_validator(mode="after")
    def _exactly_one_origin(self) -> DataSourceConfig:
        if bool(self.url) == bool(self.hub):
            raise ValueError("give either 'url' (folder or URL) or 'hub' (a Hub repository id), not both or neither")
        return self


class VersioningConfig(StrictModel):
    """What the pipeline pins with DVC before it runs, and whether it pushes to the DVC remote after."""

    sources: dict[str, DataSourceConfig] = Field(default_factory=dict)
    push: bool = True


# A registered model's name: MLflow's registry is searched with name='...' filters, which a quote breaks.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\- ]*$"
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=MODEL_NAME_PATTERN)]
LATENCY_PATTERN = r"^(cpu|cuda)_b[1-9][0-9]*$"
PATTERN_HINTS = {  # what a value that does not match may be, in words (config/load.py's messages)
    MODEL_NAME_PATTERN: "use letters, digits, '.', '_', '-' and spaces, starting with a letter or digit",
    LATENCY_PATTERN: "give cpu_b<batch size> or cuda_b<batch size>, e.g. cpu_b1",
}


class PromotionConfig(StrictModel):
    """When a challenger becomes champion. Scores are GLUE scores in [0, 1]."""

    min_glue_gain: float = Field(0.0, ge=-1.0, le=1.0)  # challenger's GLUE score >= champion's + this
    min_retention: float = Field(0.5, ge=0.0)  # challenger's GLUE retention (student / teacher) >= this
    max_latency_ms: float | None = Field(None, gt=0.0)  # budget for the latency below; None = no budget
    # which measured latency the budget applies to: cpu_b1, cpu_b32, cuda_b1, ...
    latency: str = Field("cpu_b1", pattern=LATENCY_PATTERN)


class RegistryConfig(StrictModel):
    model_name: ModelName = "distilflow-student"  # letters, digits, '.', '_', '-', spaces
    promotion: PromotionConfig = PromotionConfig()
    input_example: str = "I completed writing my [MASK]."
    top_k: int = Field(5, ge=1)  # predictions per masked sentence from the served model (a request may ask more)


class OrchestrationConfig(StrictModel):
    """How the Prefect flow runs the stages of dvc.yaml."""

    stage_retries: int = Field(1, ge=0)  # a lost process or flaky I/O; bad input fails fast anyway
    oom_retries: int = Field(2, ge=0)  # each halves the micro-batch and doubles the accumulation
    deployment: str = "scheduled"  # the Prefect deployment's name
    schedule: str = "0 3 * * 0"  # its cron schedule (UTC), e.g. Sundays 03:00
    concurrency_limit: int = Field(1, ge=1)  # pipeline runs at a time; later ones wait
    # A stage that finds its output folder in use by another run waits this long, then refuses.
    lock_wait_seconds: float = Field(0.0, ge=0.0)


class TrackingConfig(StrictModel):
    enabled: bool = True  # false: log nothing, import no MLflow (e.g. a bare GPU machine's smoke test)
    tracking_uri: str = Field("sqlite:///mlruns/mlflow.db", min_length=1)
    artifact_root: Path = Path("mlruns/artifacts")
    experiment: str = Field("distilflow", min_length=1)
    system_metrics: bool = True
