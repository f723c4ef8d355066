"""How students are scored: GLUE fine-tuning, latency and the ONNX export."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distilflow.config.strict import PositiveFloat, PositiveInt, StrictModel


class LatencyConfig(StrictModel):
    batch_sizes: list[PositiveInt] = Field([1], min_length=1)  # batch 1: the promotion rule's (cpu_b1)
    seq_length: int = Field(128, ge=2, le=8192)  # at most the model's positions (checked where a model is known)
    repeats: int = Field(10, ge=1)


class ExportConfig(StrictModel):
    """ONNX and dynamic-int8 exports of the student, refused when they drift from PyTorch."""

    max_abs_logit_diff: float = Field(1e-3, gt=0.0)  # fp32 ONNX vs PyTorch, any real token
    max_int8_accuracy_drop: float = Field(0.02, ge=0.0, le=1.0)  # held-out masked-token accuracy, PyTorch - int8
    max_int8_glue_drop: float = Field(0.01, ge=0.0, le=1.0)  # the GLUE classifiers' mean dev score, PyTorch - int8
    check_sequences: int = Field(256, ge=1)  # held-out test sequences (fixed masks) the checks run on
    threads: int | None = Field(None, ge=1)  # latency: ONNX Runtime and torch threads (None: all cores)
    latency: LatencyConfig = LatencyConfig(repeats=20)


class TaskDistillationConfig(StrictModel):
    """Task-specific distillation while the student fine-tunes: the teacher fine-tuned on the task
    (the cached baseline) gives soft targets. Needs a teacher (the pipeline's, or `glue --teacher`)."""

    weight: float = Field(0.0, ge=0.0, le=1.0)  # share of the loss from the teacher's targets; 0 = off
    temperature: float = Field(1.0, gt=0)  # classification tasks; STS-B matches the teacher's score (MSE)
    # The student's epochs while it learns from the teacher's targets (TinyBERT trains its task-distillation
    # stage longer than the teacher's fine-tuning); None = glue.epochs, the teacher's recipe.
    epochs: float | None = Field(10.0, gt=0)


class SelectionConfig(StrictModel):
    """Choosing between recipes off the dev sets: a seeded slice of each training set, stratified by label,
    is held out, not trained on, and scored in place of the dev set(s)."""

    holdout: float = Field(0.0, ge=0.0, lt=0.5)  # its share of the training set; 0 = off (score on dev)
    seed: int = 0


class GlueConfig(StrictModel):
    """GLUE fine-tuning evaluation; defaults are the standard BERT/DistilBERT recipe."""

    source: str = "nyu-mll/glue"  # Hub id, or a folder in the original GLUE release format
    # The quick scale (two tasks, capped): `make run` in minutes. The headline: params/headline.yaml.
    tasks: list[str] = Field(["rte", "mrpc"], min_length=1)
    max_seq_length: int = Field(128, ge=8, le=8192)  # at most the model's positions (checked before fine-tuning)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    learning_rates: list[PositiveFloat] = Field([1e-4], min_length=1)  # several: a grid, selected on dev
    epochs: float = Field(3.0, gt=0)
    # The student's epochs when it fine-tunes without the teacher's targets (distillation.weight 0); None = epochs.
    # With them, distillation.epochs. (§12 chose a 10-epoch teacher and a 3-epoch student for RTE.)
    student_epochs: float | None = Field(None, gt=0)
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    seeds: list[int] = Field([42], min_length=1)  # the median over seeds is reported
    max_train_examples: int | None = Field(1000, ge=1)  # the quick scale's cap; None = the full training set
    device: Literal["auto", "cpu", "cuda"] = "auto"  # bf16 on a GPU; latency is measured on the CPU too
    progress: bool = True
    latency: LatencyConfig = LatencyConfig()
    distillation: TaskDistillationConfig = TaskDistillationConfig()
    selection: SelectionConfig = SelectionConfig()
