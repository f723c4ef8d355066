"""The training loop, for distillation and for a teacher's MLM head: the step's batches (padded and masked
afresh by the DataLoader), forward, loss, backward (accumulating), clip, step; validate every `eval_every`
steps, checkpoint every `checkpoint_every`. Only parameters with `requires_grad` are optimised (how head
training keeps parts of the teacher frozen). On a GPU the loop never waits for the device inside a step:
loss terms stay tensors until `log_every`, positions are index tensors prepared on the CPU, batches arrive
in pinned memory and are copied without blocking. Under torchrun it is data parallel (distributed.py).

It takes its settings (TrainConfig), the models, the data (TrainingData), where checkpoints go
(Checkpoints) and what to tell the outside world (Callbacks: metrics, progress): loop_io.py.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from datasets import Dataset
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from distilflow.base.devices import frozen_teacher, pick_autocast_dtype, pick_device, uses_fused_adamw
from distilflow.config import TrainConfig
from distilflow.data.batching import MaskingCollator, StepBatch, StepOrder, sequence_lengths, step_loader
from distilflow.train.architecture import encoder_layers
from distilflow.train.batch_size import require_global_batch
from distilflow.train.checkpoint import capture_rng_states, restore_rng_states, resume_state, save_checkpoint
from distilflow.train.distributed import ProcessGroup, process_group
from distilflow.train.divergence import NonfiniteSteps, refuse_diverged_weights, refuse_nonfinite, step_unless_nonfinite
from distilflow.train.loop_io import Callbacks, Checkpoints, TrainingData, TrainResult
from distilflow.train.losses import DistillationLoss, StepCounts
from distilflow.train.mlm_metrics import masked_lm_metrics
from distilflow.train.optimizer import build_optimizer
from distilflow.train.student import MaskedLMView, attach_projection

logger = logging.getLogger(__name__)


@dataclass
class _Window:
    """Tokens and data waits since the last log line."""

    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)


class Trainer:
    def __init__(self, model: torch.nn.Module, loss_fn: DistillationLoss, data: TrainingData, config: TrainConfig,
                 checkpoints: Checkpoints, teacher: torch.nn.Module | None = None, callbacks: Callbacks | None = None,
                 group: ProcessGroup | None = None):
        self.group = group or process_group()
        global_batch = require_global_batch(config, self.group.world_size, len(data.train))
        self.config, self.loss_fn, self.data, self.checkpoints = config, loss_fn, data, checkpoints
        self.callbacks = callbacks if callbacks and self.group.is_main else Callbacks()
        self.device = self.group.device(pick_device(config.device))
        self.autocast_dtype = pick_autocast_dtype(config.precision, self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 vocabulary projection on tensor cores
        if teacher is not None and loss_fn.config.compares_hidden_states and \
                model.config.hidden_size != teacher.config.hidden_size:
            attach_projection(model, teacher.config.hidden_size, config.seed)  # the same W_h in every process
        torch.manual_seed(config.seed + self.group.rank)  # dropout differs between processes, as it should
        self.model = model.to(self.device).train()
        self.teacher = None if teacher is None else \
            frozen_teacher(teacher, encoder_layers(teacher)[1], self.device, self.autocast_dtype)
        self.student_view = MaskedLMView(self.model)
        self.teacher_view = MaskedLMView(self.teacher) if self.teacher is not None else None
        if config.compile:
            for view in filter(None, (self.student_view, self.teacher_view)):
                view.encoder.compile(dynamic=False)
        self.train_view = self.student_view
        if self.group.is_distributed:
            self.train_view = DistributedDataParallel(
                self.student_view, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False, find_unused_parameters=not loss_fn.needs_student_logits)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        fused = uses_fused_adamw(self.device, self.autocast_dtype)
        self.optimizer, self.scheduler = build_optimizer(self.model, config, fused=fused)
        self.order = StepOrder(len(data.train), global_batch, config.seed,
                               lengths=sequence_lengths(data.train) if config.group_by_length else None)
        self.collator = MaskingCollator(data.masker, data.tokenizer.pad_token_id, config.seed, config.micro_batch_size,
                                        config.gradient_accumulation_steps, self.group.rank, self.group.world_size,
                                        pad_to=data.sequence_length if config.compile else None)
        self.step = 0
        self.nonfinite = NonfiniteSteps(self.device, config.max_nonfinite_steps)

    # -- checkpoints -------------------------------------------------------------------------
    def start(self, resume: bool = False, restart: bool = False, discard_stale: bool = False) -> int | None:
        """Continue from the latest checkpoint (resume), discard old ones (restart), or refuse to mix them.

        discard_stale: a checkpoint from other params or data is dropped instead of refused (what a
        pipeline wants after its params changed; a person at a terminal gets the error instead).
        """
        state = resume_state(self.checkpoints.folder, self.checkpoints.run_key, resume, restart, discard_stale,
                             clear=self.group.is_main)
        self.group.barrier()
        if state is None:
            return None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        per_process = state["rng"]
        restore_rng_states(per_process[self.group.rank % len(per_process)])
        self.step = state["step"]
        logger.info("resumed from step %d of %d (%s)", self.step, self.config.max_steps, self.checkpoints.folder)
        return self.step

    def save(self) -> Path | None:
        """A checkpoint of this step, unless a step since the last one was skipped (nonfinite: the weights may be
        on their way to diverging; none is written until an interval passes without a skip)."""
        self.nonfinite.refuse_past_limit(self.step)
        refuse_diverged_weights(self.trainable, self.step)
        if not self.nonfinite.checkpoint_allowed():  # the same count in every process (all-reduced)
            logger.warning("step %d not checkpointed: a step since the last checkpoint had a NaN or infinite loss or "
                           "gradient", self.step)
            return None
        rng = self.group.gather(capture_rng_states())  # every process's dropout stream, for an exact resume
        path = None
        if self.group.is_main:
            state = {"run_key": self.checkpoints.run_key, "model": self.model.state_dict(), "rng": rng,
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
            path = save_checkpoint(self.checkpoints.folder, self.step, state, self.config.keep_checkpoints)
        self.group.barrier()
        return path

    # -- the loop ----------------------------------------------------------------------------
    def run(self, resume: bool = False, restart: bool = False, discard_stale: bool = False) -> TrainResult:
        resumed_from = self.start(resume=resume, restart=restart, discard_stale=discard_stale)
        cfg = self.config
        progress = tqdm(total=cfg.max_steps, initial=self.step, desc=self.callbacks.description, unit="step",
                        dynamic_ncols=True, disable=not self.group.is_main)
        window, data_wait = _Window(), 0.0
        for step_batch, waited in self.batches(self.step, cfg.max_steps):
            data_wait += waited
            terms = self.optimizer_step(step_batch)
            self.step += 1
            window.tokens += step_batch.global_tokens
            progress.update(1)
            self.callbacks.step(self.step, cfg.max_steps)
            self.nonfinite.refuse_past_limit(self.step, when_free=True)  # every step where reading it costs nothing
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                window = self._log(terms, window, progress)
            if self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                self.callbacks.metrics(self.validate(prefix="val_"), self.step)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                self.save()
        progress.close()
        validation = self.validate(prefix="val_")
        self.callbacks.metrics(validation, self.step)
        if self.group.is_main:
            refuse_nonfinite("validation masked-LM loss", validation["val_mlm_loss"], self.step)
        return TrainResult(steps=self.step, validation=validation, resumed_from=resumed_from,
                           data_wait_seconds=data_wait)

    def _log(self, terms: dict[str, torch.Tensor], window: _Window, progress) -> _Window:
        values = self._read(terms)  # the one wait for the GPU per log interval
        self.nonfinite.refuse_past_limit(self.step)
        if self.step == self.config.max_steps:  # the model to be saved: its own loss must be a number
            refuse_nonfinite("training loss", values["loss"], self.step)
        tokens_per_second = window.tokens / max(time.perf_counter() - window.started, 1e-9)
        progress.set_postfix(loss=f"{values['loss']:.3f}", tok_s=f"{tokens_per_second:,.0f}")
        self.callbacks.metrics({**values, "learning_rate": self.scheduler.get_last_lr()[0],
                                "tokens_per_second": tokens_per_second}, self.step)
        return _Window()

    def batches(self, first_step: int, last_step: int) -> Iterator[tuple[StepBatch, float]]:
        """The steps' batches, each with the seconds the loop waited for it (0 when data keeps up)."""
        loader = iter(step_loader(self.data.train, self.collator, self.order, first_step, last_step,
                                  self.config.data_workers, pin_memory=self.device.type == "cuda"))
        while True:
            waiting_since = time.perf_counter()
            step_batch = next(loader, None)
            if step_batch is None:
                return
            yield step_batch, time.perf_counter() - waiting_since

    def optimizer_step(self, step_batch: StepBatch) -> dict[str, torch.Tensor]:
        summed = self.accumulate_gradients(step_batch)
        summed["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        # A NaN or infinite gradient, or loss: a diverged model can give a NaN loss with a finite gradient
        # (docs/reliability.md). The norm is taken after DDP's all-reduce; the loss is each process's share.
        nonfinite = ~(torch.isfinite(summed["grad_norm"]) & torch.isfinite(summed["loss"]))
        if self.group.is_distributed:  # every process skips the same steps
            nonfinite = nonfinite.to(torch.int32)
            torch.distributed.all_reduce(nonfinite, op=torch.distributed.ReduceOp.MAX)
            nonfinite = nonfinite.bool()
        self.nonfinite.count(nonfinite)
        step_unless_nonfinite(self.optimizer, nonfinite)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return summed

    def accumulate_gradients(self, step_batch: StepBatch) -> dict[str, torch.Tensor]:
        """Forward and backward over this process's micro-batches; returns the step's loss terms."""
        counts = StepCounts(targets=step_batch.global_targets, tokens=step_batch.global_tokens)
        summed: dict[str, torch.Tensor] = {}
        last = len(step_batch.micro_batches) - 1
        for index, micro in enumerate(step_batch.micro_batches):
            micro = micro.to(self.device, non_blocking=True)
            # DDP averages gradients over processes, but each term is already divided by the whole
            # step's count: scale back so that the sum over processes is the global-batch gradient.
            sync = nullcontext() if index == last or not self.group.is_distributed else self.train_view.no_sync()
            with sync, self.autocast():
                terms = self.loss_fn(self.train_view, self.teacher_view, micro, counts)
                (terms.total * self.group.world_size).backward()
            for name, value in terms.detached().items():
                summed[name] = summed[name] + value if name in summed else value
        return summed

    def _read(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """Floats of the step's terms; loss terms summed over processes (each holds its share)."""
        names = [name for name in terms if name != "grad_norm"]
        losses = torch.stack([terms[name].float() for name in names])
        if self.group.is_distributed:
            torch.distributed.all_reduce(losses)
        return {**dict(zip(names, losses.tolist())), "grad_norm": float(terms["grad_norm"]),
                "nonfinite_steps": self.nonfinite.read()}

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def validate(self, prefix: str = "") -> dict[str, float]:
        return self.evaluate(self.data.validation, prefix, max_sequences=self.config.eval_sequences)

    def evaluate(self, dataset: Dataset, prefix: str = "", max_sequences: int | None = None) -> dict[str, float]:
        """Masked-LM loss, accuracy and (distilling) teacher agreement on `dataset`, with fixed masks."""
        if not self.group.is_main:  # one process evaluates; the others wait at the next all-reduce
            return {}
        metrics = masked_lm_metrics(
            self.model, dataset, self.data.tokenizer, teacher=self.teacher,
            max_sequences=max_sequences, device=self.device, autocast_dtype=self.autocast_dtype,
        )
        return {f"{prefix}{name}": value for name, value in metrics.items()}
