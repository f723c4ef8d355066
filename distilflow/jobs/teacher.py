"""Stage `teacher`: the complete masked-LM teacher in paths.teacher.

A teacher with an MLM head is copied as it is; one without (all-MiniLM-L6-v2, classifiers) gets a
head trained on the prepared corpus, unless no distillation term reads the teacher's logits
(distill.loss.alpha_ce = alpha_mse = 0: hidden states, attention and relations need only the encoder),
when it is copied with its head left untrained. Writing the folder either way gives DVC and the
distill stage one teacher to depend on and hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distilflow.base import stage_env
from distilflow.base.devices import pick_autocast_dtype, pick_device
from distilflow.base.hashing import fingerprint
from distilflow.base.model_folder import save_model
from distilflow.base.pretrained import SET_TEACHER, load_masked_lm, load_tokenizer, model_fingerprint
from distilflow.config import LossConfig, Params
from distilflow.data.masking import build_masker
from distilflow.data.prepared import PreparedData, load_prepared
from distilflow.steps.training_session import TrainingSession
from distilflow.train.batch_size import split_for_memory
from distilflow.train.loop_io import Checkpoints, TrainingData
from distilflow.train.losses import DistillationLoss
from distilflow.train.mlm_metrics import masked_lm_metrics
from distilflow.train.resume import ResumePolicy
from distilflow.train.teacher_head import freeze_all_but_head, missing_head_weights, require_head_or_training
from distilflow.train.trainer import Trainer

MLM_ONLY = LossConfig(alpha_ce=0.0, alpha_mlm=1.0, alpha_cos=0.0, alpha_mse=0.0)


@dataclass
class TeacherArtifact:
    path: str
    fingerprint: str
    head: str  # a key of HEAD_STATES
    metrics: dict[str, float]

    def describe(self) -> str:
        return HEAD_STATES[self.head]


HEAD_STATES = {"own": "has its own MLM head", "trained": "MLM head trained",
               "untrained": "MLM head left untrained (no distillation term reads it)"}


def run(params: Params, policy: ResumePolicy = ResumePolicy()) -> TeacherArtifact:
    session = TrainingSession(params, params.paths.teacher, params.paths.checkpoints / "teacher_head", policy)
    with session.owning_output():
        return _complete_teacher(params, session)


def _complete_teacher(params: Params, session: TrainingSession) -> TeacherArtifact:
    output = params.paths.teacher
    prepared = load_prepared(params.paths.prepared)
    torch.manual_seed(params.head.train.seed)  # a missing head is initialised randomly on load: reproducibly
    teacher, missing = load_masked_lm(params.teacher.model, role="teacher", fix=SET_TEACHER)
    tokenizer = load_tokenizer(params.teacher.model, fix=SET_TEACHER)
    missing_head = missing_head_weights(teacher, missing)
    if missing_head and params.distill.loss.needs_teacher_logits:
        require_head_or_training(params.teacher.model, missing_head, params.head.enabled)
        return train_head(params, teacher, tokenizer, prepared, session)
    # Complete, or head-less with no term on its logits: the head stays as loaded (seeded above); the
    # student copies it and its own MLM loss, if any, trains it.
    teacher_fingerprint = model_fingerprint(teacher)
    meta = {"fingerprint": teacher_fingerprint, "source": params.teacher.model, "head_trained": False,
            "head_untrained": bool(missing_head), "metrics": {}}
    if session.group.is_main:  # under torchrun one process writes the folder
        save_model(teacher, tokenizer, output, meta)
    session.group.barrier()
    return TeacherArtifact(str(output), teacher_fingerprint, "untrained" if missing_head else "own", metrics={})


def train_head(params: Params, teacher, tokenizer, prepared: PreparedData, session: TrainingSession) -> TeacherArtifact:
    """Train the missing MLM head (and the top layers asked for), measured on held-out text before and after."""
    # The encoder is what was loaded; the head is random, so fingerprint the encoder only.
    encoder_fingerprint = model_fingerprint(teacher.base_model)
    # Uniform masking for the head (BERT's pre-training recipe): smoothing would skew it to rare words.
    head_masking = params.masking.model_copy(update={"smoothing": 0.0})
    run_key = fingerprint("head-v1", encoder_fingerprint, prepared.fingerprint,
                          params.head.model_dump(mode="json"), head_masking.model_dump(mode="json"))
    trainable = freeze_all_but_head(teacher, params.head.unfreeze_top_layers)
    held_out = prepared.split("test") if (prepared.path / "test").exists() else prepared.split("validation")
    train_cfg = params.head.train
    device = session.group.device(pick_device(train_cfg.device))
    tags = {"stage": "teacher_head", "data_fingerprint": prepared.fingerprint,
            "teacher_encoder_fingerprint": encoder_fingerprint}
    tracking = session.tracking
    with session.tracked_run("teacher-head", run_key, tags) as run:
        tracking.log_source_datasets(params.versioning, ["corpus", "teacher"])
        tracking.log_params({"teacher": params.teacher.model_dump(mode="json"),
                             "head": params.head.model_dump(mode="json"),
                             "masking": params.masking.model_dump(mode="json"),
                             "data": {"fingerprint": prepared.fingerprint}, "head_trainable_parameters": trainable})
        before = masked_lm_metrics(teacher.to(device), held_out, tokenizer, max_sequences=train_cfg.eval_sequences,
                                   device=device, autocast_dtype=pick_autocast_dtype(train_cfg.precision, device))
        data = TrainingData(prepared.split("train"), prepared.split("validation"), build_masker(head_masking, tokenizer),
                            tokenizer, sequence_length=params.data.max_seq_length)
        trainer = Trainer(teacher, DistillationLoss(MLM_ONLY), data, split_for_memory(train_cfg, stage_env.batch_split()),
                          Checkpoints(session.checkpoints, run_key), callbacks=session.callbacks("teacher head"),
                          group=session.group)
        session.train(trainer)
        after = trainer.evaluate(held_out, max_sequences=train_cfg.eval_sequences)
        metrics = {**{f"heldout_{k}_before": v for k, v in before.items()},
                   **{f"heldout_{k}_after": v for k, v in after.items()}}
        tracking.log_metrics(metrics)
        teacher_fingerprint = model_fingerprint(teacher)
        session.save(teacher, tokenizer,
                     {"run_key": run_key, "fingerprint": teacher_fingerprint, "source": params.teacher.model,
                      "head_trained": True, "metrics": metrics, "mlflow_run_id": run.info.run_id},
                     publish=lambda staging: tracking.log_artifacts(staging, artifact_path="teacher_with_head"))
    return TeacherArtifact(str(params.paths.teacher), teacher_fingerprint, "trained", metrics=metrics)
