"""The distillation objective (DistilBERT's triple loss).

L = alpha_ce * T^2 * KL(softmax(t/T) || softmax(s/T))   soft targets: the teacher's "dark knowledge"
  + alpha_mlm * CE(s, hard labels)                       the student's own masked-LM loss at T = 1
  + alpha_cos * (1 - cos(h_teacher, h_student))          align the last hidden states
  + alpha_mse * MSE(s, t)                                optional, on logits
  + alpha_hidden/attention/relation * ...                 inside the encoders (intermediate.py)

T^2 keeps the soft-target gradients on the same scale whatever the temperature (Hinton et al. 2015).
The vocabulary projection (the costly part) runs only at the positions a term needs: the masked
targets, or every non-pad token when KD covers all positions; it and the softmaxes run in fp32.

Each term is a sum over positions divided by the number of such positions in the whole optimizer
step (all micro-batches, all processes): accumulating micro-batches then gives exactly the gradient
of one large batch, whatever the split. For a lone batch this is the plain mean.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from distilflow.config import LossConfig
from distilflow.data.batching import MicroBatch
from distilflow.data.masking import MaskedBatch
from distilflow.errors import DistilflowError
from distilflow.train.intermediate import IntermediateLosses, tap_layers
from distilflow.train.student import MaskedLMView


def softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.softmax(logits / temperature, dim=-1)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                     reduction: str = "mean") -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), summed or averaged over positions (rows)."""
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="sum") * temperature**2
    return kl / len(student_logits) if reduction == "mean" else kl


def hidden_cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """1 - cos over positions (rows), summed or averaged."""
    distance = 1.0 - F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)
    return distance.mean() if reduction == "mean" else distance.sum()


@dataclass
class LossTerms:
    total: torch.Tensor
    parts: dict[str, torch.Tensor]  # each term before weighting: ce, mlm, cos, mse

    def detached(self) -> dict[str, torch.Tensor]:
        """Tensors, not floats: reading a value would make the host wait for the GPU."""
        return {"loss": self.total.detach(), **{f"loss_{k}": v.detach() for k, v in self.parts.items()}}

    def as_floats(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.detached().items()}


@dataclass(frozen=True)
class StepCounts:
    """Positions in the whole optimizer step, the denominators of every term."""

    targets: int
    tokens: int


class DistillationLoss:
    def __init__(self, config: LossConfig):
        self.config = config
        self._inside: IntermediateLosses | None = None

    @property
    def kd_on_all_tokens(self) -> bool:
        return self.config.kd_positions == "all" and (self.config.alpha_ce > 0 or self.config.alpha_mse > 0)

    @property
    def needs_student_logits(self) -> bool:
        return self.config.alpha_mlm > 0 or self.config.alpha_ce > 0 or self.config.alpha_mse > 0

    def __call__(self, student, teacher, batch: MicroBatch | MaskedBatch, counts: StepCounts | None = None) -> LossTerms:
        """student/teacher: masked LMs or their MaskedLMView (possibly inside DistributedDataParallel)."""
        cfg = self.config
        if isinstance(batch, MaskedBatch):
            batch = MicroBatch.from_masked(batch.input_ids, batch.attention_mask, batch.labels)
        counts = counts or StepCounts(targets=len(batch.target_index), tokens=len(batch.token_index))
        rows = batch.token_index if self.kd_on_all_tokens else batch.target_index
        kd_count = counts.tokens if self.kd_on_all_tokens else counts.targets

        inside = self._intermediate(student, teacher) if cfg.uses_intermediate else None
        with _taps(student, inside.student_layers() if inside else [], inside) as student_inside:
            student_hidden, student_logits = _view(student)(batch.input_ids, batch.encoder_mask,
                                                           rows if self.needs_student_logits else None)
        parts: dict[str, torch.Tensor] = {}
        if cfg.alpha_mlm > 0:
            target_logits = student_logits[batch.target_in_tokens] if self.kd_on_all_tokens else student_logits
            parts["mlm"] = F.cross_entropy(target_logits, batch.target_labels, reduction="sum") / counts.targets
        if cfg.needs_teacher:
            with torch.no_grad(), _taps(teacher, inside.layer_map if inside else [], inside) as teacher_inside:
                teacher_hidden, teacher_logits = _view(teacher)(
                    batch.input_ids, batch.encoder_mask, rows if cfg.alpha_ce or cfg.alpha_mse else None)
            if cfg.alpha_ce > 0:
                parts["ce"] = soft_target_loss(student_logits, teacher_logits, cfg.temperature, "sum") / kd_count
            if cfg.alpha_mse > 0:
                parts["mse"] = F.mse_loss(student_logits, teacher_logits, reduction="sum") / kd_count
            if cfg.alpha_cos > 0:
                student_rows = student_hidden.flatten(0, 1).index_select(0, batch.token_index)
                teacher_rows = teacher_hidden.flatten(0, 1).index_select(0, batch.token_index)
                parts["cos"] = hidden_cosine_loss(student_rows, teacher_rows, "sum") / counts.tokens

            if inside is not None:
                project = _student_view(student).project  # a narrower student's states in the teacher's width
                for name, value in inside(student_inside, teacher_inside, batch.attention_mask, project).items():
                    parts[name] = value / counts.tokens

        weights = cfg.weights()
        total = sum(weights[name] * value for name, value in parts.items())
        return LossTerms(total=total, parts=parts)

    def _intermediate(self, student, teacher) -> IntermediateLosses:
        """Built at the first step, from the two encoders' shapes."""
        if self._inside is None:
            student_config, teacher_config = _encoder(student).config, _encoder(teacher).config
            require_loss_fits(self.config, student_config, teacher_config)
            cfg = self.config
            self._inside = IntermediateLosses(
                student_config.num_hidden_layers, teacher_config.num_hidden_layers, teacher_config.num_attention_heads,
                cfg.relation_heads or teacher_config.num_attention_heads,
                hidden=cfg.alpha_hidden > 0, attention=cfg.alpha_attention > 0, relation=cfg.alpha_relation > 0)
        return self._inside


def require_loss_fits(config: LossConfig, student_config, teacher_config) -> None:
    """The terms that need matching shapes, checked from the two configs (one line each). Hidden-state terms work
    across widths (a learned projection); attention KL compares head by head; MiniLMv2's relations split both
    widths into relation_heads."""
    if config.alpha_attention and student_config.num_attention_heads != teacher_config.num_attention_heads:
        raise DistilflowError(f"distill.loss.alpha_attention needs as many attention heads in the student as in the "
                              f"teacher ({student_config.num_attention_heads} vs {teacher_config.num_attention_heads}): "
                              "use alpha_relation, which splits both into relation_heads, instead")
    heads = config.relation_heads or teacher_config.num_attention_heads
    for who, width in (("student", student_config.hidden_size), ("teacher", teacher_config.hidden_size)):
        if config.alpha_relation and width % heads:
            raise DistilflowError(f"distill.loss.relation_heads={heads} does not divide the {who}'s {width} hidden "
                                  "units: choose a common divisor of both widths")


def _view(model):
    return MaskedLMView(model) if isinstance(model, PreTrainedModel) else model


def _student_view(model) -> MaskedLMView:
    """The MaskedLMView of a masked LM, of itself, or inside DistributedDataParallel."""
    view = _view(model)
    return getattr(view, "module", view)


def _encoder(model) -> torch.nn.Module:
    return _student_view(model).encoder


def _taps(model, layers: list[int], inside: IntermediateLosses | None):
    if inside is None or model is None:
        return nullcontext({})
    return tap_layers(_encoder(model), layers, projections=inside.needs_projections)
