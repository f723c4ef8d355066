"""AdamW with linear warmup and decay: the BERT recipe."""

from __future__ import annotations

import torch
from transformers import get_linear_schedule_with_warmup

from distilflow.config import TrainConfig


def build_optimizer(model: torch.nn.Module, config: TrainConfig, fused: bool = False):
    """AdamW over the trainable parameters (fused on the GPU's path: base/devices.py) and its warmup-then-linear-decay schedule."""
    optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.learning_rate,
                                  betas=config.adam_betas, eps=config.adam_epsilon, fused=fused)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(config.warmup_fraction * config.max_steps),
                                                config.max_steps)
    return optimizer, scheduler


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm weights (the BERT recipe)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
