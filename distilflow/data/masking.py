"""Dynamic masking (RoBERTa): a fresh MLM mask for every batch, drawn from a seeded generator.

Of the eligible tokens (never special tokens or padding), `probability` are chosen as targets;
of those, `mask_fraction` become [MASK], `random_fraction` a random (non-special) token, the rest
stay unchanged. With smoothing s > 0 a token t is chosen with weight count(t)^-s, so that frequent
tokens ("the", ",") are masked less often (DistilBERT's `mlm_smoothing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distilflow.config import MaskingConfig

IGNORE_INDEX = -100  # label of positions that are not prediction targets (torch's CE default)


@dataclass
class MaskedBatch:
    input_ids: torch.Tensor  # (batch, length) with masks applied
    attention_mask: torch.Tensor  # (batch, length) 1 for real tokens
    labels: torch.Tensor  # (batch, length) original id at targets, IGNORE_INDEX elsewhere

    def to(self, device: torch.device | str) -> MaskedBatch:
        return MaskedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


class DynamicMasker:
    def __init__(
        self,
        config: MaskingConfig,
        vocab_size: int,
        special_ids: list[int],
        mask_id: int,
        token_counts: np.ndarray | None = None,
    ):
        self.config = config
        self.mask_id = mask_id
        if config.smoothing > 0 and token_counts is not None:
            counts = torch.as_tensor(token_counts[:vocab_size], dtype=torch.float64)
            weights = counts.clamp(min=1.0) ** -config.smoothing
        else:
            weights = torch.ones(vocab_size, dtype=torch.float64)
        weights[list(special_ids)] = 0.0
        self.selection_weights = weights.float()
        self.replacement_ids = torch.nonzero(weights > 0).flatten()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator) -> MaskedBatch:
        weights = self.selection_weights[input_ids] * attention_mask
        n_eligible = int((weights > 0).sum())
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        if n_eligible == 0:
            return MaskedBatch(input_ids.clone(), attention_mask, labels)
        n_targets = max(1, round(self.config.probability * n_eligible))
        chosen = torch.multinomial(weights.flatten(), n_targets, replacement=False, generator=generator)
        is_target = torch.zeros(input_ids.numel(), dtype=torch.bool)
        is_target[chosen] = True
        is_target = is_target.view_as(input_ids)
        labels[is_target] = input_ids[is_target]

        draw = torch.rand(input_ids.shape, generator=generator)
        becomes_mask = is_target & (draw < self.config.mask_fraction)
        becomes_random = is_target & ~becomes_mask & (draw < self.config.mask_fraction + self.config.random_fraction)
        random_picks = torch.randint(len(self.replacement_ids), input_ids.shape, generator=generator)
        masked = torch.where(becomes_mask, torch.full_like(input_ids, self.mask_id), input_ids)
        masked = torch.where(becomes_random, self.replacement_ids[random_picks], masked)
        return MaskedBatch(masked, attention_mask, labels)


def build_masker(config: MaskingConfig, tokenizer, token_counts: np.ndarray | None = None) -> DynamicMasker:
    return DynamicMasker(config, len(tokenizer), tokenizer.all_special_ids, tokenizer.mask_token_id, token_counts)
