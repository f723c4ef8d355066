"""The one typed configuration: what `params.yaml` may hold (read by config/load.py).

Every hyperparameter lives here with its default; `params.yaml` states the ones a run uses and
DVC reads the same file. Unknown keys are rejected so that a typo never silently falls back to a
default.
"""

from __future__ import annotations

import re

from pydantic import model_validator

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
from distilflow.config.tasks import TASK_NAME, TaskConfig  # noqa: F401
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
    tasks: dict[str, TaskConfig] = {}  # your own labelled tasks (`distilflow task NAME`; config/tasks.py)

    @model_validator(mode="after")
    def _tasks_named_and_recipes_valid(self) -> Params:
        for name, task in self.tasks.items():
            if not re.fullmatch(TASK_NAME, name):
                raise ValueError(f"task name {name!r}: use lower-case letters, digits, '-' and '_' (it names a DVC "
                                 "stage and a registered model)")
            if not task.teacher_classifier:
                raise ValueError(f"tasks.{name} has no teacher_classifier: give the folder (or Hub id) of your classifier "
                                 "fine-tuned on it")
            try:
                task.recipe(self.glue)
            except ValueError as error:
                raise ValueError(f"tasks.{name}.{error}") from None
        return self
