"""Stage `distill`: the student (paths.student) from the prepared corpus and the complete teacher.

Student = the teacher's layers, every other one; loss = α_ce·soft targets at temperature T +
α_mlm·masked-LM + α_cos·hidden-state cosine; masks drawn anew for every batch. Resumable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig

from distilflow.config import Params
from distilflow.data.masking import build_masker
from distilflow.data.prepare import load_prepared
from distilflow.data.sources import load_masked_lm, load_pretrained, load_tokenizer, model_fingerprint
from distilflow.evaluation.speed import count_parameters
from distilflow.ops import runtime, tracking
from distilflow.ops.files import exclusive, refuse_foreign_folder, write_json
from distilflow.ops.hashing import fingerprint
from distilflow.train.checkpoint import checkpoint_to_resume, clear_checkpoints
from distilflow.train.distributed import process_group
from distilflow.train.losses import DistillationLoss
from distilflow.train.mlm_metrics import masked_lm_metrics
from distilflow.train.model_folder import MODEL_META, read_model_meta, save_model
from distilflow.train.resume import ResumePolicy, remember_run_id, resumable_run_id
from distilflow.train.student import build_student, student_layers
from distilflow.train.trainer import Trainer


@dataclass
class DistillResult:
    student_path: Path
    run_id: str | None
    metrics: dict[str, float]
    teacher_layers: list[int]


def run(params: Params, policy: ResumePolicy = ResumePolicy()) -> DistillResult:
    refuse_foreign_folder(params.paths.student, MODEL_META)  # before any training, not after
    with exclusive(params.paths.student, params.orchestration.lock_wait_seconds, enabled=process_group().is_main):
        return _distill(params, policy)


def require_student_fits(params: Params, teacher: str | Path) -> None:
    """Refuse an impossible student.n_layers / student.layers from the teacher's config, before any weights load."""
    student_layers(load_pretrained(AutoConfig, str(teacher), "teacher").num_hidden_layers, params.student)


def _distill(params: Params, policy: ResumePolicy) -> DistillResult:
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
    checkpoints = params.paths.checkpoints / "distill"
    checkpoint_to_resume(checkpoints, policy.resume, policy.restart)  # refuse before an MLflow run is opened
    group = process_group()
    tags = {"stage": "distill", "data_fingerprint": prepared.fingerprint,
            "teacher_fingerprint": teacher_meta["fingerprint"], "teacher_head_trained": str(teacher_meta["head_trained"])}
    with tracking.mlflow_run(params.tracking, "distill", run_id=resumable_run_id(checkpoints, policy, run_key),
                             tags=tags, enabled=group.is_main) as run:
        if group.is_main:
            remember_run_id(checkpoints, run.info.run_id, run_key)
            tracking.log_source_datasets(params.versioning, ["corpus", "teacher"])
        tracking.log_params({**params.model_dump(mode="json"),
                             "resolved": {"teacher_source": str(params.paths.teacher), "teacher_layers": layers,
                                          "data_fingerprint": prepared.fingerprint,
                                          "teacher_parameters": count_parameters(teacher),
                                          "student_parameters": count_parameters(student),
                                          "processes": group.world_size,
                                          **{f"sequences_{k}": v for k, v in prepared.meta["sequences"].items()}}})
        trainer = Trainer(student, DistillationLoss(params.distill.loss), masker, prepared.split("train"),
                          prepared.split("validation"), tokenizer, params.distill.train, checkpoints,
                          run_key=run_key, teacher=teacher, log_metrics=tracking.log_metrics, description="distill",
                          batch_split=runtime.batch_split(), sequence_length=params.data.max_seq_length, group=group)
        result = trainer.run(resume=policy.resume, restart=policy.restart, discard_stale=policy.discard_stale)
        metrics = dict(result.validation)
        if group.is_main and (prepared.path / "test").exists():
            test = masked_lm_metrics(trainer.model, prepared.split("test"), tokenizer, teacher=trainer.teacher,
                                     device=trainer.device, autocast_dtype=trainer.autocast_dtype)
            metrics.update({f"test_{k}": v for k, v in test.items()})
            tracking.log_metrics({f"test_{k}": v for k, v in test.items()})
        student_fingerprint = model_fingerprint(student)
        tracking.set_tags({"student_fingerprint": student_fingerprint})
        if group.is_main:
            save_model(student.cpu(), tokenizer, params.paths.student,
                       {"run_key": run_key, "fingerprint": student_fingerprint, "teacher_layers": layers,
                        "teacher_fingerprint": teacher_meta["fingerprint"], "metrics": metrics,
                        "mlflow_run_id": run.info.run_id},
                       publish=lambda staging: {"mlflow_model_id": tracking.log_student_model(
                           staging, params.registry.input_example, params.registry.top_k, metrics)})
    if group.is_main:
        clear_checkpoints(checkpoints)
        write_json(params.paths.metrics / "distill.json", metrics)
    group.barrier()
    return DistillResult(params.paths.student, run.info.run_id, metrics, layers)
