"""A diverged run stops with one line, and never checkpoints or ships NaN weights (docs/reliability.md)."""

from __future__ import annotations

import math

import torch

from distilflow.errors import DistilflowError

AGAIN = ("lower the learning rate (or max_grad_norm) and run again with --restart (earlier checkpoints and the "
         "saved model are kept)")


class NonfiniteSteps:
    """The steps skipped for a NaN or infinite loss or gradient, counted on the device. Past `limit` the run
    stops: at once where reading the count is free (a CPU), else at the next log or checkpoint (a GPU would
    wait for it). No checkpoint is written after a skipped step until the run has gone a whole checkpoint
    interval without one: a diverging run leaves only the checkpoints from before it began to diverge, and
    the rotation (keep_checkpoints) never drops those for later ones."""

    def __init__(self, device: torch.device, limit: int):
        self.total = torch.zeros((), dtype=torch.int64, device=device)
        self.limit, self.free_to_read = limit, device.type == "cpu"
        self.at_last_checkpoint = 0

    def count(self, nonfinite: torch.Tensor) -> None:
        self.total += nonfinite

    def read(self) -> int:
        return int(self.total)

    def checkpoint_allowed(self) -> bool:
        """Whether no step was skipped since the last checkpoint (the next interval is then measured from here)."""
        skipped = self.read()
        clean = skipped == self.at_last_checkpoint
        self.at_last_checkpoint = skipped
        return clean

    def refuse_past_limit(self, step: int, when_free: bool = False) -> None:
        if when_free and not self.free_to_read:
            return
        skipped = self.read()
        if skipped > self.limit:
            raise DistilflowError(f"training diverged: {skipped} steps had a NaN or infinite loss or gradient (more "
                                  f"than max_nonfinite_steps={self.limit}) by step {step}; {AGAIN}")


def refuse_nonfinite(what: str, value: float, step: int) -> None:
    if not math.isfinite(value):
        raise DistilflowError(f"training diverged: the {what} is {value} at step {step}; {AGAIN}")


def refuse_diverged_weights(parameters: list[torch.Tensor], step: int) -> None:
    """Never checkpoint (or, after the last step, ship) weights that are NaN or infinite."""
    finite = torch.stack([torch.isfinite(p).all() for p in parameters]).all()
    if not bool(finite):  # one wait for the GPU per checkpoint
        raise DistilflowError(f"training diverged: the weights are NaN or infinite at step {step}; {AGAIN}")


def step_unless_nonfinite(optimizer: torch.optim.Optimizer, nonfinite: torch.Tensor) -> None:
    """The optimizer step, skipped when the step's gradient or loss is NaN or infinite."""
    if optimizer.defaults.get("fused"):
        # Fused AdamW skips on the device (the flag GradScaler uses): no wait for the GPU per step.
        optimizer.found_inf = nonfinite.float()
        optimizer.step()
    elif not bool(nonfinite):  # unfused (CPU): reading the flag costs nothing
        optimizer.step()
