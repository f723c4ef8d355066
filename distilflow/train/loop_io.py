"""What the training loop (trainer.py) is given besides its settings, and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from datasets import Dataset

from distilflow.data.masking import DynamicMasker


@dataclass
class TrainingData:
    """What the loop reads: the sequences, how a batch's masks are drawn, and their tokenizer."""

    train: Dataset
    validation: Dataset
    masker: DynamicMasker
    tokenizer: Any
    sequence_length: int | None = None  # every batch padded to it under torch.compile (fixed shapes)


@dataclass(frozen=True)
class Checkpoints:
    folder: Path
    run_key: str  # the params and data they belong to: another run's checkpoints never resume this one


@dataclass
class Callbacks:
    """metrics(values, step): every log_every steps and each validation; step(done, total): every step."""

    metrics: Callable[[dict[str, float], int], None] = lambda values, step: None
    step: Callable[[int, int], None] = lambda done, total: None
    description: str = "train"  # the progress bar's label


@dataclass
class TrainResult:
    steps: int
    validation: dict[str, float]
    resumed_from: int | None
    data_wait_seconds: float = 0.0  # time the loop waited for the next batch (0 when the GPU never starves)
