"""One resumable, tracked training session: what training the teacher's head and distilling share.

It owns the output folder (one run at a time, never a folder distilflow did not write), the resume policy
(checkpoints refused before an MLflow run opens, the run that wrote them continued), the training and the
end (the model saved, then its checkpoints cleared: the saved model supersedes them).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from distilflow.base import stage_env
from distilflow.base.files import exclusive, refuse_foreign_folder
from distilflow.base.model_folder import MODEL_META, save_model
from distilflow.config import Params
from distilflow.ops.tracking import Tracking
from distilflow.train.checkpoint import checkpoint_to_resume, clear_checkpoints
from distilflow.train.distributed import ProcessGroup, process_group
from distilflow.train.loop_io import Callbacks, TrainResult
from distilflow.train.resume import ResumePolicy, remember_run_id, resumable_run_id
from distilflow.train.trainer import Trainer


@dataclass
class TrainingSession:
    params: Params
    output: Path  # the model folder it ends in
    checkpoints: Path  # what a killed run resumes from; not a stage output (DVC's run-cache stays usable)
    policy: ResumePolicy = ResumePolicy()
    group: ProcessGroup = field(default_factory=process_group)
    tracking: Tracking = field(init=False)

    def __post_init__(self):
        self.checkpoints = stage_env.resumable_path(self.checkpoints)
        self.tracking = Tracking(self.params.tracking, enabled=self.group.is_main)

    @contextmanager
    def owning_output(self) -> Iterator[None]:
        """The output is this run's alone until it ends, and is a folder distilflow wrote (or none)."""
        refuse_foreign_folder(self.output, MODEL_META)  # before any training, not after
        with exclusive(self.output, self.params.orchestration.lock_wait_seconds, enabled=self.group.is_main):
            yield

    @contextmanager
    def tracked_run(self, name: str, run_key: str, tags: dict[str, str]) -> Iterator[Any]:
        """An MLflow run (the session's `tracking`, entered here): with --resume, the one that wrote the
        checkpoints (same params and data)."""
        checkpoint_to_resume(self.checkpoints, self.policy.resume, self.policy.restart)  # refuse before a run opens
        run_id = resumable_run_id(self.checkpoints, self.policy, run_key)
        with self.tracking, self.tracking.run(name, run_id=run_id, tags=tags) as run:
            if self.group.is_main:
                remember_run_id(self.checkpoints, run.info.run_id, run_key)
            yield run

    def callbacks(self, description: str) -> Callbacks:
        """The loop's metrics into this session's MLflow run, its progress into the stage's progress file."""
        return Callbacks(metrics=self.tracking.log_metrics, description=description,
                         step=lambda done, total: stage_env.report_progress(description, done, total))

    def train(self, trainer: Trainer) -> TrainResult:
        return trainer.run(resume=self.policy.resume, restart=self.policy.restart,
                           discard_stale=self.policy.discard_stale)

    def save(self, model, tokenizer, meta: dict, publish: Callable[[Path], dict | None] | None = None) -> None:
        """The model folder (one process writes it), then the checkpoints it supersedes are cleared."""
        if self.group.is_main:
            save_model(model.cpu(), tokenizer, self.output, meta, publish=publish)
            clear_checkpoints(self.checkpoints)
        self.group.barrier()
