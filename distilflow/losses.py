"""The distillation objective (DistilBERT's triple loss).

L = alpha_ce * T^2 * KL(softmax(t/T) || softmax(s/T))   soft targets: the teacher's "dark knowledge"
  + alpha_mlm * CE(s, hard labels)                       the student's own masked-LM loss at T = 1
  + alpha_cos * (1 - cos(h_teacher, h_student))          align the last hidden states
  + alpha_mse * MSE(s, t)                                optional, on logits

T^2 keeps the soft-target gradients on the same scale whatever the temperature (Hinton et al. 2015).
The vocabulary projection (the costly part) runs only at the positions a term needs: the masked
targets, or every non-pad token when KD covers all positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distilflow.config import LossConfig
from distilflow.masking import IGNORE_INDEX, MaskedBatch
from distilflow.student import split_masked_lm


def softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.softmax(logits / temperature, dim=-1)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over positions (rows)."""
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean")
    return kl * temperature**2


def hidden_cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos over positions (rows)."""
    return (1.0 - F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)).mean()


@dataclass
class LossTerms:
    total: torch.Tensor
    parts: dict[str, torch.Tensor]  # each weighted term before weighting: ce, mlm, cos, mse

    def as_floats(self) -> dict[str, float]:
        return {"loss": float(self.total.detach()), **{f"loss_{k}": float(v.detach()) for k, v in self.parts.items()}}


class DistillationLoss:
    def __init__(self, config: LossConfig):
        self.config = config

    def __call__(self, student, teacher, batch: MaskedBatch) -> LossTerms:
        cfg = self.config
        is_target = batch.labels != IGNORE_INDEX
        # KD positions: the masked targets, or every real token. MLM targets are always a subset.
        kd_positions = is_target if cfg.kd_positions == "masked" else batch.attention_mask.bool()
        target_in_kd = is_target[kd_positions]

        student_encoder, student_head = split_masked_lm(student)
        student_hidden = student_encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        student_logits = student_head(student_hidden[kd_positions])

        parts: dict[str, torch.Tensor] = {}
        if cfg.alpha_mlm > 0:
            parts["mlm"] = F.cross_entropy(student_logits[target_in_kd].float(), batch.labels[is_target])
        if cfg.needs_teacher:
            teacher_encoder, teacher_head = split_masked_lm(teacher)
            with torch.no_grad():
                teacher_hidden = teacher_encoder(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask
                ).last_hidden_state
                teacher_logits = teacher_head(teacher_hidden[kd_positions]) if cfg.alpha_ce or cfg.alpha_mse else None
            if cfg.alpha_ce > 0:
                parts["ce"] = soft_target_loss(student_logits, teacher_logits, cfg.temperature)
            if cfg.alpha_mse > 0:
                parts["mse"] = F.mse_loss(student_logits.float(), teacher_logits.float(), reduction="sum") / len(student_logits)
            if cfg.alpha_cos > 0:
                real_tokens = batch.attention_mask.bool()
                parts["cos"] = hidden_cosine_loss(student_hidden[real_tokens], teacher_hidden[real_tokens])

        weights = {"ce": cfg.alpha_ce, "mlm": cfg.alpha_mlm, "cos": cfg.alpha_cos, "mse": cfg.alpha_mse}
        total = sum(weights[name] * value for name, value in parts.items())
        return LossTerms(total=total, parts=parts)
