"""The step's batch: smaller pieces after an out-of-memory, and a corpus large enough to fill it."""

from __future__ import annotations

from distilflow.config import TrainConfig
from distilflow.errors import DistilflowError


def split_for_memory(config: TrainConfig, batch_split: int) -> TrainConfig:
    """After an out-of-memory (the orchestrator's batch split): the same effective batch in smaller pieces."""
    if batch_split <= 1:
        return config
    return config.model_copy(update={
        "micro_batch_size": max(1, config.micro_batch_size // batch_split),
        "gradient_accumulation_steps": config.gradient_accumulation_steps * batch_split})


def require_global_batch(config: TrainConfig, world_size: int, sequences: int) -> int:
    """The sequences of one optimizer step over all processes; refused when the corpus cannot fill one."""
    global_batch = config.micro_batch_size * config.gradient_accumulation_steps * world_size
    if sequences < global_batch:
        raise DistilflowError(
            f"only {sequences} training sequences for a global batch of {global_batch} (micro_batch_size="
            f"{config.micro_batch_size} x gradient_accumulation_steps x processes): add text to the corpus "
            "or lower the batch size")
    return global_batch
