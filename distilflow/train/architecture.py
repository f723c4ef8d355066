"""Where a masked-LM keeps its layers and its head, found from the model's own structure rather than from names,
so that one student builder serves BERT, RoBERTa, DistilBERT, DeBERTa-v2 and ModernBERT alike:

- the layers are the encoder's one list of `config.num_hidden_layers` modules (BERT's `encoder.layer`,
  DistilBERT's `transformer.layer`, ModernBERT's `layers`);
- the head is what the model's forward runs after the encoder, in that order, ending at the output embeddings
  (BERT's `cls`, RoBERTa's `lm_head`, DistilBERT's `vocab_transform`, activation, `vocab_layer_norm` and
  `vocab_projector`, ModernBERT's `head` and `decoder`), found by running the model once and checked against
  its own logits.
"""

from __future__ import annotations

import weakref

import torch
from transformers import PreTrainedModel

from distilflow.errors import DistilflowError


def encoder_layers(model: PreTrainedModel) -> tuple[str, torch.nn.ModuleList]:
    """(the state-dict prefix of layer i's keys before the `i.`, the layer list) of a masked-LM or its encoder."""
    count = model.config.num_hidden_layers
    base = model.base_model
    found = [(name, module) for name, module in base.named_modules()
             if isinstance(module, torch.nn.ModuleList) and len(module) == count]
    if len(found) != 1:
        raise DistilflowError(f"{type(model).__name__}: no single list of its {count} layers in the encoder "
                              f"({len(found)} found): this model family cannot be made into a student here")
    name, layers = found[0]
    prefix = f"{model.base_model_prefix}.{name}." if base is not model else f"{name}."
    return prefix, layers


def layer_of(key: str, prefix: str) -> int | None:
    """The layer number in a state-dict key under `prefix` (`bert.encoder.layer.` + `3.attention...` -> 3)."""
    if not key.startswith(prefix):
        return None
    number = key[len(prefix):].split(".", 1)[0]
    return int(number) if number.isdigit() else None


def select_layers_config(config, layers: list[int]) -> None:
    """The settings given per layer (ModernBERT's `layer_types`: which layers attend globally) for the kept layers,
    in place: any list as long as the teacher's layer count."""
    count = config.num_hidden_layers
    for name, value in list(config.to_dict().items()):
        if isinstance(value, list) and len(value) == count and name != "architectures":
            setattr(config, name, [value[i] for i in layers])
    config.num_hidden_layers = len(layers)


_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its head, found once per model


def masked_lm_head(model: PreTrainedModel) -> torch.nn.Module:
    """The modules the model's forward applies to the encoder's output, in the order it calls them, as one module
    (the same parameters, not copies)."""
    if model not in _HEADS:
        _HEADS[model] = _find_head(model)
    return _HEADS[model]


def _find_head(model: PreTrainedModel) -> torch.nn.Module:
    base = model.base_model
    children = [module for _, module in model.named_children() if module is not base]
    called: list[torch.nn.Module] = []
    hooks = [child.register_forward_hook(lambda module, *_: called.append(module)) for child in children]
    was_training = model.training
    model.eval()
    try:
        ids = torch.full((1, 4), min(5, model.config.vocab_size - 1), device=model.device)
        mask = torch.ones_like(ids)
        with torch.no_grad(), _as_trained(model):
            expected = model(input_ids=ids, attention_mask=mask).logits
            hidden = base(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    head = torch.nn.Sequential(*dict.fromkeys(called))  # in call order, each once
    with torch.no_grad(), _as_trained(model):
        same = len(head) > 0 and torch.allclose(head(hidden), expected, atol=1e-5)
    if not same or not any(module is model.get_output_embeddings() for module in head[-1].modules()):
        raise DistilflowError(f"{type(model).__name__}: its masked-LM head is not a chain of modules after the "
                              "encoder ending at its output embeddings: this model family cannot be distilled here")
    return head


def _as_trained(model: PreTrainedModel):
    """bf16 autocast when some of the model's matrices are stored in bf16 (a frozen teacher under bf16,
    base/devices.frozen_teacher), as the training step runs it; else nothing."""
    bf16 = any(parameter.dtype == torch.bfloat16 for parameter in model.parameters())
    return torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16)
