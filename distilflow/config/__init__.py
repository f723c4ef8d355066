"""The one typed configuration: what `params.yaml` may hold (read by config/load.py).

Every hyperparameter lives here with its default; `params.yaml` states the ones a run uses and
DVC reads the same file. Unknown keys are rejected so that a typo never silently falls back to a
default.
"""

from __future__ import annotations

from distilflow.config.evaluation import (  # noqa: F401
    ExportConfig,
    GlueConfig,
    LatencyConfig,
    SelectionConfig,
    TaskDistillationConfig,
)
from distilflow.config.operations import (  # noqa: F401
    LATENCY_PATTERN,
    MODEL_NAME_PATTERN,
    PATTERN_HINTS,
    DataSourceConfig,
    ModelName,
    OrchestrationConfig,
    PathsConfig,
    PromotionConfig,
    RegistryConfig,
    TrackingConfig,
    VersioningConfig,
)
from distilflow.config.strict import PositiveFloat, PositiveInt, StrictModel  # noqa: F401
from distilflow.config.training import (  # noqa: F401
    Beta,
    CorpusSource,
    DataConfig,
    DistillConfig,
    HeadConfig,
    LossConfig,
    MaskingConfig,
    StudentConfig,
    TeacherConfig,
    TrainConfig,
)


class Params(StrictModel):
    teacher: TeacherConfig = TeacherConfig()
    data: DataConfig
    masking: MaskingConfig = MaskingConfig()
    head: HeadConfig = HeadConfig()
    student: StudentConfig = StudentConfig()
    distill: DistillConfig = DistillConfig()
    glue: GlueConfig = GlueConfig()
    export: ExportConfig = ExportConfig()
    paths: PathsConfig = PathsConfig()
    tracking: TrackingConfig = TrackingConfig()
    versioning: VersioningConfig = VersioningConfig()
    registry: RegistryConfig = RegistryConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
