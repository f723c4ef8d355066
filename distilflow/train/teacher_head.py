"""Teachers without a masked-LM head (sentence encoders, fine-tuned classifiers) get one trained.

Distilling from a randomly initialised head would teach the student noise, so a missing head is
either trained here (encoder frozen, optionally its top layers unfrozen) or a clear error.
"""

from __future__ import annotations

from transformers import PreTrainedModel

from distilflow.errors import DistilflowError
from distilflow.train.architecture import encoder_layers
from distilflow.train.student import split_masked_lm


def missing_head_weights(model: PreTrainedModel, missing_keys: set[str]) -> set[str]:
    """The missing weights that belong to the MLM head, i.e. lie outside the base encoder."""
    encoder_prefix = f"{model.base_model_prefix}."
    return {key for key in missing_keys if not key.startswith(encoder_prefix)}


def require_head_or_training(teacher_name: str, missing_head: set[str], head_training_enabled: bool) -> None:
    if missing_head and not head_training_enabled:
        raise DistilflowError(
            f"teacher '{teacher_name}' has no masked-LM head (missing {sorted(missing_head)[0]} and "
            f"{len(missing_head) - 1} more): set head.enabled=true to train one first, or use an MLM checkpoint"
        )


def freeze_all_but_head(model: PreTrainedModel, unfreeze_top_layers: int) -> int:
    """Make only the MLM head (and the top encoder layers, if asked) trainable; returns #trainable params."""
    n_layers = model.config.num_hidden_layers
    if unfreeze_top_layers > n_layers:
        raise DistilflowError(f"head.unfreeze_top_layers={unfreeze_top_layers} exceeds the teacher's {n_layers} layers")
    model.requires_grad_(False)
    _, head = split_masked_lm(model)
    head.requires_grad_(True)
    # The decoder shares its weight with the input embeddings: keep that frozen, it is the encoder's.
    output_embeddings = model.get_output_embeddings()
    if output_embeddings is not None and output_embeddings.weight is model.get_input_embeddings().weight:
        output_embeddings.weight.requires_grad_(False)
    _, layers = encoder_layers(model)
    for layer in layers[n_layers - unfreeze_top_layers:]:
        layer.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
