"""What is trained and how: the corpus, masking, the teacher's head, the student and its distillation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from distilflow.config.strict import StrictModel


class CorpusSource(StrictModel):
    """Raw text: local files/globs (.txt, .jsonl, .parquet) or a Hub dataset."""

    files: list[str] = Field(default_factory=list)
    dataset: str | None = None
    dataset_config: str | None = None
    split: str = "train"
    text_column: str = "text"

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CorpusSource:
        if bool(self.files) == bool(self.dataset):
            raise ValueError("give either 'files' (paths or globs) or 'dataset' (a Hub id), not both or neither")
        return self


class DataConfig(StrictModel):
    train: CorpusSource
    test: CorpusSource | None = None
    max_seq_length: int = Field(128, ge=8, le=8192)
    min_seq_length: int = Field(16, ge=3)
    max_unk_fraction: float = Field(0.1, ge=0.0, le=1.0)
    validation_fraction: float = Field(0.02, gt=0.0, lt=0.5)
    max_train_sequences: int | None = Field(None, ge=1)
    max_test_sequences: int | None = Field(512, ge=1)
    seed: int = 42

    @model_validator(mode="after")
    def _lengths_fit(self) -> DataConfig:
        if self.min_seq_length > self.max_seq_length:
            raise ValueError(f"min_seq_length {self.min_seq_length} is above max_seq_length {self.max_seq_length}: "
                             "every sequence would be dropped")
        return self


class MaskingConfig(StrictModel):
    probability: float = Field(0.15, gt=0.0, lt=1.0)
    mask_fraction: float = Field(0.8, ge=0.0, le=1.0)
    random_fraction: float = Field(0.1, ge=0.0, le=1.0)
    # DistilBERT's mlm_smoothing: mask token t with weight count(t)^-smoothing; 0 disables.
    smoothing: float = Field(0.7, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _fractions_fit(self) -> MaskingConfig:
        if self.mask_fraction + self.random_fraction > 1.0:
            raise ValueError("mask_fraction + random_fraction must be at most 1 (the rest stays unchanged)")
        return self


Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class TrainConfig(StrictModel):
    """Optimisation and bookkeeping shared by head training and distillation."""

    # 0 (distillation only): the student is the copied teacher layers, trained not at all -- the
    # baseline that shows what distilling adds (the "0-step" rows of docs/results.md).
    max_steps: int = Field(120, ge=0)  # the quick scale; the headline distils 1,000 (params/headline.yaml)
    micro_batch_size: int = Field(32, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    adam_epsilon: float = Field(1e-6, gt=0.0)
    adam_betas: tuple[Beta, Beta] = (0.9, 0.999)  # DistilBERT: (0.9, 0.98)
    warmup_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    max_grad_norm: float = Field(5.0, gt=0.0)
    # A step whose gradient is NaN or infinite is skipped (no update) and counted; more than this many
    # skipped steps in one run stops training with an error, keeping the last good checkpoint.
    max_nonfinite_steps: int = Field(5, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 42
    log_every: int = Field(10, ge=1)
    eval_every: int = Field(60, ge=1)
    eval_sequences: int = Field(256, ge=1)
    checkpoint_every: int = Field(25, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    # Processes that pad and mask the next steps while the model trains: 0 = in the training process
    # (right for a 2-core CPU); 2-8 keep a GPU fed.
    data_workers: int = Field(0, ge=0)
    # torch.compile the encoders, batches padded to data.max_seq_length so that shapes never change.
    compile: bool = False
    # DistilBERT's group_by_size: batches of sequences of similar length (less padding), in random order.
    group_by_length: bool = True


class TeacherConfig(StrictModel):
    model: str = "sentence-transformers/all-MiniLM-L6-v2"


class HeadConfig(StrictModel):
    """Training an MLM head for a teacher that has none (e.g. sentence encoders, classifiers)."""

    enabled: bool = True
    unfreeze_top_layers: int = Field(6, ge=0)
    train: TrainConfig = TrainConfig(learning_rate=3e-4, eval_every=1000, checkpoint_every=50)

    @model_validator(mode="after")
    def _head_gets_trained(self) -> HeadConfig:
        if self.enabled and self.train.max_steps == 0:  # it would be recorded as trained
            raise ValueError("head.train.max_steps must be at least 1: a head trained for 0 steps is a random one")
        return self


class StudentConfig(StrictModel):
    n_layers: int | None = Field(None, ge=1, description="default: half the teacher's layers")
    # every_other: 0,2,4,...; every_other_top: every other counting down from the top layer (6->3: 1,3,5;
    # keeps the layer the teacher's output comes from); spread: evenly spaced from first to last (12->6
    # gives DistilBERT's 0,2,4,7,9,11); or an explicit list of teacher layer indices.
    layers: Literal["every_other", "every_other_top", "spread"] | list[Annotated[int, Field(ge=0)]] = "every_other_top"
    init: Literal["teacher", "random"] = "teacher"
    # Narrower than the teacher (default: its width). With init: teacher the student keeps the teacher's most
    # important channels, whole heads and neurons (distilflow/train/width.py), so its head size is the teacher's;
    # num_attention_heads defaults to hidden_size / that head size, intermediate_size to the teacher's ratio.
    hidden_size: int | None = Field(None, ge=8)
    intermediate_size: int | None = Field(None, ge=8)
    num_attention_heads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _distinct_layers(self) -> StudentConfig:  # their range is checked against the teacher's config
        if isinstance(self.layers, list) and len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers {self.layers} repeats a teacher layer: give each at most once")
        return self


class LossConfig(StrictModel):
    temperature: float = Field(2.0, gt=0.0)
    alpha_ce: float = Field(5.0, ge=0.0)
    alpha_mlm: float = Field(2.0, ge=0.0)
    alpha_cos: float = Field(1.0, ge=0.0)
    alpha_mse: float = Field(0.0, ge=0.0)
    kd_positions: Literal["masked", "all"] = "masked"
    # Inside the encoders (distilflow/train/intermediate.py), student layer i against teacher layer
    # (i+1)·N/M - 1: hidden-state MSE, attention-distribution KL, and MiniLMv2's Q-Q/K-K/V-V relation
    # KL of the last layer split into relation_heads (default: the teacher's attention heads).
    alpha_hidden: float = Field(0.0, ge=0.0)
    alpha_attention: float = Field(0.0, ge=0.0)
    alpha_relation: float = Field(0.0, ge=0.0)
    relation_heads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _some_loss(self) -> LossConfig:
        if sum(self.weights().values()) == 0:
            raise ValueError("all loss weights are 0: set at least one of " + ", ".join(f"alpha_{n}" for n in self.weights()))
        return self

    def weights(self) -> dict[str, float]:
        """Each term's weight, by the name its value is logged under (loss_<name>)."""
        return {"ce": self.alpha_ce, "mlm": self.alpha_mlm, "cos": self.alpha_cos, "mse": self.alpha_mse,
                "hidden": self.alpha_hidden, "attention": self.alpha_attention, "relation": self.alpha_relation}

    @property
    def uses_intermediate(self) -> bool:
        return self.alpha_hidden > 0 or self.alpha_attention > 0 or self.alpha_relation > 0

    @property
    def needs_teacher_logits(self) -> bool:
        """Terms on the teacher's MLM-head outputs; the others need only its encoder."""
        return self.alpha_ce > 0 or self.alpha_mse > 0

    @property
    def compares_hidden_states(self) -> bool:
        """Terms that set the student's hidden states against the teacher's (a narrower student's are projected)."""
        return self.alpha_cos > 0 or self.alpha_hidden > 0

    @property
    def needs_teacher(self) -> bool:
        return self.alpha_ce > 0 or self.alpha_cos > 0 or self.alpha_mse > 0 or self.uses_intermediate


class DistillConfig(StrictModel):
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
