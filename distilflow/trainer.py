"""The training loop, used both for distillation and for training a teacher's MLM head.

One screen of loop: draw a batch, mask it afresh, forward, loss, backward (accumulating), clip,
step; validate every `eval_every` steps; checkpoint every `checkpoint_every`. Only parameters with
`requires_grad` are optimised, which is how head training keeps the teacher's encoder frozen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from distilflow.checkpoint import (
    capture_rng_states,
    checkpoint_to_resume,
    clear_checkpoints,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from distilflow.config import TrainConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation import masked_lm_metrics
from distilflow.losses import DistillationLoss
from distilflow.masking import DynamicMasker, pad_batch
from distilflow.runtime import report_progress

MetricsLogger = Callable[[dict[str, float], int], None]


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise DistilflowError("train.device=cuda but no CUDA GPU is visible: set train.device=auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPU by default; fp32 on CPU, where bf16 matmuls are slow on most machines."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


class BatchStream:
    """Shuffled batches, epoch after epoch; (epoch, offset) is saved so a resumed run sees the same data."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.epoch, self.offset = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.dataset), generator=generator).tolist()

    def next_batch(self) -> list[list[int]]:
        if self.offset + self.batch_size > len(self._order):
            self.epoch, self.offset = self.epoch + 1, 0
            self._order = self._permutation()
        indices = self._order[self.offset : self.offset + self.batch_size]
        self.offset += self.batch_size
        return self.dataset[indices]["input_ids"]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.offset = state["epoch"], state["offset"]
        self._order = self._permutation()


@dataclass
class TrainResult:
    steps: int
    validation: dict[str, float]
    resumed_from: int | None


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: DistillationLoss,
        masker: DynamicMasker,
        train_set: Dataset,
        validation_set: Dataset,
        tokenizer,
        config: TrainConfig,
        checkpoint_dir: Path,
        run_key: str,
        teacher: torch.nn.Module | None = None,
        log_metrics: MetricsLogger | None = None,
        description: str = "train",
        batch_split: int = 1,
    ):
        if batch_split > 1:  # after an out-of-memory: same effective batch in smaller pieces
            config = config.model_copy(update={
                "micro_batch_size": max(1, config.micro_batch_size // batch_split),
                "gradient_accumulation_steps": config.gradient_accumulation_steps * batch_split})
        if len(train_set) < config.micro_batch_size:
            raise DistilflowError(
                f"only {len(train_set)} training sequences for micro_batch_size={config.micro_batch_size}: "
                "add text to the corpus or lower the batch size"
            )
        self.config, self.loss_fn, self.masker, self.tokenizer = config, loss_fn, masker, tokenizer
        self.validation_set, self.checkpoint_dir, self.run_key = validation_set, checkpoint_dir, run_key
        self.log_metrics = log_metrics or (lambda metrics, step: None)
        self.description = description
        self.device = pick_device(config.device)
        self.autocast_dtype = pick_autocast_dtype(config.precision, self.device)
        torch.manual_seed(config.seed)

        self.model = model.to(self.device).train()
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        self.optimizer = torch.optim.AdamW(
            _parameter_groups(self.model, config.weight_decay), lr=config.learning_rate, eps=config.adam_epsilon
        )
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, round(config.warmup_fraction * config.max_steps), config.max_steps
        )
        self.stream = BatchStream(train_set, config.micro_batch_size, config.seed)
        self.mask_generator = torch.Generator().manual_seed(config.seed)
        self.step = 0

    # -- checkpoints -------------------------------------------------------------------------
    def start(self, resume: bool = False, restart: bool = False, discard_stale: bool = False) -> int | None:
        """Continue from the latest checkpoint (resume), discard old ones (restart), or refuse to mix them.

        discard_stale: a checkpoint from other params or data is dropped instead of refused (what a
        pipeline wants after its params changed; a person at a terminal gets the error instead).
        """
        latest = checkpoint_to_resume(self.checkpoint_dir, resume, restart)
        if latest is None:
            clear_checkpoints(self.checkpoint_dir)
            return None
        state = load_checkpoint(latest)
        if state.get("run_key") != self.run_key and discard_stale:
            clear_checkpoints(self.checkpoint_dir)
            return None
        if state.get("run_key") != self.run_key:
            raise DistilflowError(
                f"checkpoint '{latest}' belongs to a run with other params or data: pass --restart to start "
                "over, or restore the params it was made with"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.restore(state["data_position"])
        self.mask_generator.set_state(state["mask_generator"])
        restore_rng_states(state["rng"])
        self.step = state["step"]
        return self.step

    def save(self) -> Path:
        state = {
            "run_key": self.run_key,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "data_position": self.stream.state(),
            "mask_generator": self.mask_generator.get_state(),
            "rng": capture_rng_states(),
        }
        return save_checkpoint(self.checkpoint_dir, self.step, state, self.config.keep_checkpoints)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, resume: bool = False, restart: bool = False, discard_stale: bool = False) -> TrainResult:
        resumed_from = self.start(resume=resume, restart=restart, discard_stale=discard_stale)
        cfg = self.config
        progress = tqdm(total=cfg.max_steps, initial=self.step, desc=self.description, unit="step", dynamic_ncols=True)
        window_tokens, window_start = 0, time.perf_counter()
        while self.step < cfg.max_steps:
            terms, tokens = self._optimizer_step()
            self.step += 1
            window_tokens += tokens
            progress.update(1)
            report_progress(self.description, self.step, cfg.max_steps)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                tokens_per_second = window_tokens / max(time.perf_counter() - window_start, 1e-9)
                progress.set_postfix(loss=f"{terms['loss']:.3f}", tok_s=f"{tokens_per_second:,.0f}")
                self.log_metrics({**terms, "learning_rate": self.scheduler.get_last_lr()[0],
                                  "tokens_per_second": tokens_per_second}, self.step)
                window_tokens, window_start = 0, time.perf_counter()
            if self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                self.log_metrics(self.validate(prefix="val_"), self.step)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                self.save()
        progress.close()
        validation = self.validate(prefix="val_")
        self.log_metrics(validation, self.step)
        return TrainResult(steps=self.step, validation=validation, resumed_from=resumed_from)

    def _optimizer_step(self) -> tuple[dict[str, float], int]:
        cfg = self.config
        summed: dict[str, float] = {}
        tokens = 0
        for _ in range(cfg.gradient_accumulation_steps):
            input_ids, attention_mask = pad_batch(self.stream.next_batch(), self.tokenizer.pad_token_id)
            batch = self.masker(input_ids, attention_mask, self.mask_generator).to(self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                terms = self.loss_fn(self.model, self.teacher, batch)
            (terms.total / cfg.gradient_accumulation_steps).backward()
            for name, value in terms.as_floats().items():
                summed[name] = summed.get(name, 0.0) + value / cfg.gradient_accumulation_steps
            tokens += int(attention_mask.sum())
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        summed["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return summed, tokens

    def validate(self, prefix: str = "") -> dict[str, float]:
        metrics = masked_lm_metrics(
            self.model, self.validation_set, self.tokenizer, teacher=self.teacher,
            max_sequences=self.config.eval_sequences, device=self.device, autocast_dtype=self.autocast_dtype,
        )
        return {f"{prefix}{name}": value for name, value in metrics.items()}


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm weights (the BERT recipe)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
