"""Losses on the inside of the encoders, for any teacher (an MLM head is not needed):

- hidden states: MSE between student layer i's output and teacher layer map[i]'s (TinyBERT);
- attention distributions: KL(teacher || student) of each head's softmax(QKᵀ/√d) at the mapped
  layers (TinyBERT, MiniLM);
- self-attention relations: KL of softmax(XXᵀ/√d) for X = Q, K, V of the last layer, split into
  `relation_heads` (MiniLMv2), so teacher and student may differ in heads.

Q, K, V and the layer outputs are taken by forward hooks on the encoder's own modules: nothing asks
the model for attention probabilities, so the fast (SDPA) attention path stays. Each term is a sum
over the real (non-pad) tokens, divided by the caller by the step's token count, like the other terms.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from distilflow.errors import DistilflowError
from distilflow.train.architecture import encoder_layers

PROJECTIONS = ("query", "key", "value")


def uniform_layer_map(n_teacher: int, n_student: int) -> list[int]:
    """Student layer i learns from teacher layer (i+1)·N/M - 1: evenly spaced, last to last (TinyBERT)."""
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


@contextmanager
def tap_layers(encoder: torch.nn.Module, layers: list[int], projections: bool) -> Iterator[dict]:
    """Record, during the forward passes inside the block, each listed layer's output ("hidden", i) and,
    if asked, its attention's query/key/value projections ("query", i), ... (batch, length, width)."""
    captured: dict[tuple[str, int], torch.Tensor] = {}
    _, by_index = encoder_layers(encoder)  # found from the structure: any family's layers (train/architecture.py)
    handles = []

    def keep(key):
        def hook(module, inputs, output):
            captured[key] = output[0] if isinstance(output, tuple) else output
        return hook

    try:
        for index in layers:
            handles.append(by_index[index].register_forward_hook(keep(("hidden", index))))
            if projections:
                for kind in PROJECTIONS:
                    module = next((m for name, m in by_index[index].named_modules() if name.endswith(f".{kind}")), None)
                    if module is None:
                        raise DistilflowError(f"layer {index} of {type(encoder).__name__} has no '{kind}' projection: "
                                              "set alpha_attention and alpha_relation to 0")
                    handles.append(module.register_forward_hook(keep((kind, index))))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Σ over real tokens of the mean squared difference of their hidden vectors."""
    squared = (student.float() - teacher.float()).pow(2).mean(dim=-1)
    return squared[token_mask].sum()


def head_log_probs(queries: torch.Tensor, keys: torch.Tensor, heads: int, key_mask: torch.Tensor) -> torch.Tensor:
    """log softmax(Q_h K_hᵀ / √d_h) per head over the real keys: (batch, heads, length, length)."""
    batch, length, width = queries.shape
    if width % heads:
        raise DistilflowError(f"{width} hidden units do not split into {heads} heads: choose a divisor of {width}")
    split = lambda x: x.float().view(batch, length, heads, width // heads).transpose(1, 2)  # noqa: E731
    scores = split(queries) @ split(keys).transpose(-1, -2) / math.sqrt(width // heads)
    scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def distribution_kl(student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor,
                    token_mask: torch.Tensor) -> torch.Tensor:
    """Σ over real query tokens of KL(teacher || student), averaged over heads."""
    kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)  # (batch, heads, length)
    return kl.mean(dim=1)[token_mask].sum()


class IntermediateLosses:
    """The three terms for one student/teacher pair; `layer_map[i]` is the teacher layer of student layer i."""

    def __init__(self, n_student: int, n_teacher: int, attention_heads: int, relation_heads: int,
                 hidden: bool, attention: bool, relation: bool):
        self.layer_map = uniform_layer_map(n_teacher, n_student)
        self.attention_heads, self.relation_heads = attention_heads, relation_heads
        self.hidden, self.attention, self.relation = hidden, attention, relation

    def student_layers(self) -> list[int]:
        return list(range(len(self.layer_map)))

    @property
    def needs_projections(self) -> bool:
        return self.attention or self.relation

    def __call__(self, student: dict, teacher: dict, attention_mask: torch.Tensor,
                 project: Callable[[torch.Tensor], torch.Tensor] = lambda hidden: hidden) -> dict[str, torch.Tensor]:
        """student/teacher: what tap_layers captured; `project`: a narrower student's hidden states to the teacher's
        width (TinyBERT's W_h). Returns the sums (not yet divided by the token count)."""
        mask = attention_mask.bool()
        pairs = list(enumerate(self.layer_map))
        parts = {}
        if self.hidden:
            parts["hidden"] = sum(hidden_mse(project(student["hidden", s]), teacher["hidden", t], mask)
                                  for s, t in pairs) / len(pairs)
        if self.attention:
            parts["attention"] = sum(
                distribution_kl(head_log_probs(student["query", s], student["key", s], self.attention_heads, mask),
                                head_log_probs(teacher["query", t], teacher["key", t], self.attention_heads, mask), mask)
                for s, t in pairs) / len(pairs)
        if self.relation:  # MiniLMv2: Q-Q, K-K, V-V of the last layers
            s, t = pairs[-1]
            parts["relation"] = sum(
                distribution_kl(head_log_probs(student[kind, s], student[kind, s], self.relation_heads, mask),
                                head_log_probs(teacher[kind, t], teacher[kind, t], self.relation_heads, mask), mask)
                for kind in PROJECTIONS) / len(PROJECTIONS)
        return parts
