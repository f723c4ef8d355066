"""The one typed configuration: what `params.yaml` may hold (read by config/load.py).

Every hyperparameter lives here with its default; `params.yaml` states the ones a run uses and
DVC reads the same file. Unknown keys are rejected so that a typo never silently falls back to a
default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    # allow_inf_nan=False: a temperature or learning rate of .inf would pass a bound like gt=0 and diverge.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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
    # baseline that shows what distilling adds (bench/ablation.py's "0 steps" row).
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
    def needs_teacher(self) -> bool:
        return self.alpha_ce > 0 or self.alpha_cos > 0 or self.alpha_mse > 0 or self.uses_intermediate


class DistillConfig(StrictModel):
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()


PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


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
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    seeds: list[int] = Field([42], min_length=1)  # the median over seeds is reported
    max_train_examples: int | None = Field(1000, ge=1)  # the quick scale's cap; None = the full training set
    device: Literal["auto", "cpu", "cuda"] = "auto"  # bf16 on a GPU; latency is measured on the CPU too
    progress: bool = True
    latency: LatencyConfig = LatencyConfig()
    distillation: TaskDistillationConfig = TaskDistillationConfig()
    selection: SelectionConfig = SelectionConfig()


class PathsConfig(StrictModel):
    prepared: Path = Path("artifacts/prepared")
    teacher: Path = Path("artifacts/teacher")  # the complete masked-LM teacher that distillation uses
    student: Path = Path("artifacts/student")
    checkpoints: Path = Path("artifacts/checkpoints")
    glue: Path = Path("artifacts/glue")
    export: Path = Path("artifacts/export")
    metrics: Path = Path("metrics")
    # Teacher baselines kept in the repository (`distilflow glue --record`), read when the cache lacks one
    glue_baselines: Path = Path("bench/results/glue_baselines")


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
