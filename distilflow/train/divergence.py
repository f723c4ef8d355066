"""A diverged run stops with one line, and never checkpoints or ships NaN weights (docs/reliability.md)."""

from __future__ import annotations

import math

import torch

from distilflow.errors import DistilflowError

AGAIN = ("lower the learning rate (or max_grad_norm) and run again with --restart (earlier checkpoints and the "
         "saved model are kept)")


def refuse_too_many_nonfinite_steps(skipped: int, limit: int, step: int) -> None:
    if skipped > limit:
        raise DistilflowError(f"training diverged: {skipped} steps had a NaN or infinite loss or gradient (more than "
                              f"max_nonfinite_steps={limit}) by step {step}; {AGAIN}")


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
