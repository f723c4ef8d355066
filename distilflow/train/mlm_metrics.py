"""Held-out masked-LM evaluation: loss, accuracy and teacher-student top-1 agreement.

Masks are drawn uniformly (no frequency smoothing, as in BERT's own MLM numbers) from a generator
with a fixed seed, so every evaluation of every model sees the same masked positions and the
numbers are comparable across steps, runs and masking settings.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from datasets import Dataset

from distilflow.config import MaskingConfig
from distilflow.data.batching import MicroBatch, pad_batch
from distilflow.data.masking import DynamicMasker
from distilflow.errors import DistilflowError
from distilflow.train.student import MaskedLMView

EVAL_MASK_SEED = 1234


@torch.no_grad()
def masked_lm_metrics(
    model,
    sequences: Dataset,
    tokenizer,
    teacher=None,
    batch_size: int = 32,
    max_sequences: int | None = None,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Masked-token cross-entropy and accuracy of `model` (and agreement with `teacher` if given)."""
    masker = evaluation_masker(tokenizer)
    generator = torch.Generator().manual_seed(EVAL_MASK_SEED)
    n = len(sequences) if max_sequences is None else min(max_sequences, len(sequences))
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, "correct": 0, "agree": 0, "targets": 0}
    predicted_counts: Counter[int] = Counter()
    for start in range(0, n, batch_size):
        ids = sequences[start : min(start + batch_size, n)]["input_ids"]
        masked = masker(*pad_batch(ids, tokenizer.pad_token_id), generator)
        batch = MicroBatch.from_masked(masked.input_ids, masked.attention_mask, masked.labels).to(device)
        labels = batch.target_labels
        with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits = MaskedLMView(model)(batch.input_ids, batch.encoder_mask, batch.target_index)[1]
            if teacher is not None:
                teacher_logits = MaskedLMView(teacher)(batch.input_ids, batch.encoder_mask, batch.target_index)[1]
                teacher_top1 = teacher_logits.argmax(-1)
        totals["loss"] += float(F.cross_entropy(logits, labels, reduction="sum"))
        totals["correct"] += int((logits.argmax(-1) == labels).sum())
        predicted_counts.update(logits.argmax(-1).tolist())
        if teacher is not None:
            totals["agree"] += int((logits.argmax(-1) == teacher_top1).sum())
        totals["targets"] += int(labels.numel())
    model.train(was_training)
    if totals["targets"] == 0:  # a loss of 0.0 over nothing would read as a perfect model
        raise DistilflowError(f"no tokens to evaluate: the evaluation set has {n} sequences (and no maskable "
                              "tokens): give data.test / data.validation_fraction more text")
    targets = totals["targets"]
    metrics = {"mlm_loss": totals["loss"] / targets, "mlm_accuracy": totals["correct"] / targets,
               # A degenerate model predicts one frequent token ("," or "the") almost everywhere: this
               # share near 1 says so, and makes "agreement" with such a teacher meaningless.
               "top1_majority_share": max(predicted_counts.values(), default=0) / targets}
    if teacher is not None:
        metrics["teacher_agreement"] = totals["agree"] / targets
    return metrics


def evaluation_masker(tokenizer) -> DynamicMasker:
    """BERT's standard 15% / 80-10-10 masking without smoothing: the usual meaning of "MLM loss"."""
    return DynamicMasker(MaskingConfig(smoothing=0.0), len(tokenizer), tokenizer.all_special_ids,
                         tokenizer.mask_token_id)

