"""Task-specific distillation (TinyBERT's second stage): while the student fine-tunes on a GLUE task, the
teacher fine-tuned on the same task gives soft targets.

The teacher's targets are its predictions on the training set, computed once when its baseline is
fine-tuned and cached beside that baseline's result, so the student's run needs no teacher in memory.
Loss = (1 - weight) · the task's own loss + weight · the soft-target loss: KL between the softened
distributions (× T², Hinton et al. 2015) for classification, MSE on the teacher's prediction for STS-B.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer

from distilflow.errors import DistilflowError

TEACHER_COLUMN = "teacher_logits"


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                     regression: bool) -> torch.Tensor:
    if regression:  # one output: the temperature has nothing to soften
        return F.mse_loss(student_logits.view(-1).float(), teacher_logits.view(-1).float())
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_probs = F.softmax(teacher_logits.float() / temperature, dim=-1)
    # × T²: keeps the soft term's gradients on the hard loss's scale whatever the temperature
    return F.kl_div(student_log_probs, teacher_probs, reduction="batchmean") * temperature**2


class TaskDistillationTrainer(Trainer):
    """transformers' Trainer with the soft-target term added where a batch carries the teacher's logits
    (the training set); evaluation batches have none and get the task's own loss."""

    loss_is_scaled_for_ga = False  # a per-batch mean, like the model's own loss

    def __init__(self, *args, weight: float, temperature: float, regression: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight, self.temperature, self.regression = weight, temperature, regression

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_logits = inputs.pop(TEACHER_COLUMN, None)
        hard, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if teacher_logits is None:
            return (hard, outputs) if return_outputs else hard
        soft = soft_target_loss(outputs.logits, teacher_logits, self.temperature, self.regression)
        loss = (1.0 - self.weight) * hard + self.weight * soft
        return (loss, outputs) if return_outputs else loss


def soft_targets_file(baseline_file: Path) -> Path:
    """Beside the teacher's cached baseline result: the same key, so the same weights, data and recipe."""
    return baseline_file.with_suffix(".soft_targets.npy")


def save_soft_targets(path: Path, logits: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.save(handle, logits.astype(np.float32))
    partial.replace(path)


def load_soft_targets(path: Path, n_examples: int) -> np.ndarray:
    try:
        logits = np.load(path)
    except (OSError, ValueError) as error:
        raise DistilflowError(f"teacher soft targets {path} are unreadable ({error}): delete the file to "
                              "recompute them") from None
    if len(logits) != n_examples:
        raise DistilflowError(f"teacher soft targets {path} cover {len(logits)} examples, the training set has "
                              f"{n_examples}: delete the file to recompute them")
    return logits
