"""Stage `distill`: the student (paths.student) from the prepared corpus and the complete teacher.

Student = some of the teacher's layers (student.layers, every other one counted from the top by default),
copied; loss = the nonzero terms of distill.loss (soft targets at temperature T, masked LM, hidden-state
cosine; optionally logit MSE and the hidden/attention/relation terms); masks drawn anew for every batch.
Resumable (training_session.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig

from distilflow.base import stage_env
from distilflow.base.files import write_json
from distilflow.base.hashing import fingerprint
from distilflow.base.model_folder import count_parameters, read_model_meta
from distilflow.base.pretrained import load_masked_lm, load_pretrained, load_tokenizer, model_fingerprint
from distilflow.config import Params
from distilflow.data.masking import build_masker
from distilflow.data.prepared import load_prepared
from distilflow.steps.training_session import TrainingSession
from distilflow.train.batch_size import split_for_memory
from distilflow.train.loop_io import Checkpoints, TrainingData
from distilflow.train.losses import DistillationLoss, require_loss_fits
from distilflow.train.resume import ResumePolicy
from distilflow.train.student import build_student, drop_projection, student_shape
from distilflow.train.trainer import Trainer


@dataclass
class DistillResult:
    student_path: Path
    run_id: str | None
    metrics: dict[str, float]
    teacher_layers: list[int]


def run(params: Params, policy: ResumePolicy = ResumePolicy()) -> DistillResult:
    session = TrainingSession(params, params.paths.student, params.paths.checkpoints / "distill", policy)
    with session.owning_output():
        return _distill(params, session)


def require_student_fits(params: Params, teacher: str | Path) -> None:
    """Refuse an impossible student shape, or a loss it cannot take, from the teacher's config alone: before any
    weights or data load."""
    teacher_config = load_pretrained(AutoConfig, str(teacher), "teacher")
    require_loss_fits(params.distill.loss, student_shape(teacher_config, params.student), teacher_config)


def _distill(params: Params, session: TrainingSession) -> DistillResult:
    teacher_meta = read_model_meta(params.paths.teacher, made_by="teacher")
    require_student_fits(params, params.paths.teacher)  # from the teacher's config: seconds, before the data loads
    prepared = load_prepared(params.paths.prepared)
    teacher, _ = load_masked_lm(str(params.paths.teacher), role="teacher")
    tokenizer = load_tokenizer(str(params.paths.teacher))
    student, layers = build_student(teacher, params.student, seed=params.distill.train.seed)
    masker = build_masker(params.masking, tokenizer, prepared.token_counts())
    run_key = fingerprint("distill-v1", teacher_meta["fingerprint"], prepared.fingerprint,
                          params.student.model_dump(mode="json"), params.masking.model_dump(mode="json"),
                          params.distill.model_dump(mode="json"))
    group = session.group
    tags = {"stage": "distill", "data_fingerprint": prepared.fingerprint,
            "teacher_fingerprint": teacher_meta["fingerprint"], "teacher_head_trained": str(teacher_meta["head_trained"])}
    tracking = session.tracking
    with session.tracked_run("distill", run_key, tags) as run:
        if group.is_main:
            tracking.log_source_datasets(params.versioning, ["corpus", "teacher"])
        tracking.log_params({**params.model_dump(mode="json"),
                             "resolved": {"teacher_source": str(params.paths.teacher), "teacher_layers": layers,
                                          "data_fingerprint": prepared.fingerprint,
                                          "teacher_parameters": count_parameters(teacher),
                                          "student_parameters": count_parameters(student),
                                          "processes": group.world_size,
                                          **{f"sequences_{k}": v for k, v in prepared.meta["sequences"].items()}}})
        data = TrainingData(prepared.split("train"), prepared.split("validation"), masker, tokenizer,
                            sequence_length=params.data.max_seq_length)
        trainer = Trainer(student, DistillationLoss(params.distill.loss), data,
                          split_for_memory(params.distill.train, stage_env.batch_split()),
                          Checkpoints(session.checkpoints, run_key), teacher=teacher,
                          callbacks=session.callbacks("distill"), group=group)
        metrics = dict(session.train(trainer).validation)
        if (prepared.path / "test").exists():
            test = trainer.evaluate(prepared.split("test"), prefix="test_")  # {} outside the main process
            metrics.update(test)
            tracking.log_metrics(test)
        drop_projection(student)  # trained with it for the hidden-state terms; saved as a stock model
        student_fingerprint = model_fingerprint(student)
        tracking.set_tags({"student_fingerprint": student_fingerprint})
        session.save(student, tokenizer,
                     {"run_key": run_key, "fingerprint": student_fingerprint, "teacher_layers": layers,
                      "shape": {"layers": len(layers), "hidden_size": student.config.hidden_size,
                                "intermediate_size": student.config.intermediate_size,
                                "attention_heads": student.config.num_attention_heads},
                      "teacher_fingerprint": teacher_meta["fingerprint"], "metrics": metrics,
                      "mlflow_run_id": run.info.run_id},
                     publish=lambda staging: {"mlflow_model_id": tracking.log_student_model(
                         staging, params.registry.input_example, params.registry.top_k, metrics)})
    if group.is_main:
        write_json(params.paths.metrics / "distill.json", metrics)
    group.barrier()
    return DistillResult(params.paths.student, run.info.run_id, metrics, layers)
