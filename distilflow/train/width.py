"""A narrower student taken from its teacher: the most important hidden channels, attention heads and
feed-forward neurons of each kept layer, sliced out of the teacher's weights (structured pruning as an
initialisation, as Minitron does before it distils; here the importance is read off the weights, so no
data is needed and the same teacher always gives the same student).

Importance, the larger the more kept:
- a hidden channel c: Σ |γ_c| over the encoder's LayerNorms, the scale each LayerNorm gives channel c of
  the residual stream that every later block reads;
- a head h of a layer: ‖W_V[h]‖ · ‖W_O[:, h]‖, the size of the path by which the head writes to the stream;
- a feed-forward neuron n: ‖W_in[n, :]‖ · ‖W_out[:, n]‖, likewise.
The kept indices stay in the teacher's order. Heads are kept whole, so the student's head size is the
teacher's. Parameter names follow BERT/RoBERTa's (`...attention.self.query`, `...intermediate.dense`).
"""

from __future__ import annotations

import re

import torch

from distilflow.errors import DistilflowError

_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def hidden_importance(teacher_state: dict[str, torch.Tensor], width: int) -> torch.Tensor:
    scores = torch.zeros(width)
    for key, tensor in teacher_state.items():
        if re.search(r"(LayerNorm|layer_norm)\.weight$", key) and tensor.shape == (width,):
            scores += tensor.detach().float().abs().cpu()
    return scores


def _is_ffn_output(key: str) -> bool:
    """The feed-forward block's output projection (`...layer.<i>.output.dense.weight`), not attention's."""
    return key.endswith("output.dense.weight") and ".attention." not in key


def _layer_tensor(state: dict[str, torch.Tensor], layer: int, suffix: str) -> torch.Tensor:
    for key, tensor in state.items():
        match = _LAYER.search(key)
        if match and int(match.group(1)) == layer and key.endswith(suffix) and \
                (suffix != "output.dense.weight" or _is_ffn_output(key)):
            return tensor.detach().float().cpu()
    raise DistilflowError(f"the teacher's layer {layer} has no '{suffix}' weight: a narrower student is sliced from "
                          "BERT/RoBERTa-style layers; use student.init: random")


def head_importance(state: dict[str, torch.Tensor], layer: int, heads: int) -> torch.Tensor:
    value = _layer_tensor(state, layer, "attention.self.value.weight")  # (heads·d, hidden)
    output = _layer_tensor(state, layer, "attention.output.dense.weight")  # (hidden, heads·d)
    per_head = value.shape[0] // heads
    return torch.stack([value[h * per_head:(h + 1) * per_head].norm() * output[:, h * per_head:(h + 1) * per_head].norm()
                        for h in range(heads)])


def neuron_importance(state: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    into = _layer_tensor(state, layer, "intermediate.dense.weight")  # (neurons, hidden)
    out = _layer_tensor(state, layer, "output.dense.weight")  # (hidden, neurons)
    return into.norm(dim=1) * out.norm(dim=0)


def top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """The indices of the `keep` largest scores, in their original order (ties: the lower index)."""
    values = scores.detach().tolist()
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))[:keep]
    return torch.tensor(sorted(order))


def head_dims(heads: torch.Tensor, head_size: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in heads.tolist()])


class WidthSlicer:
    """Which teacher channels, head dimensions and neurons the student keeps, and the slicing of any tensor."""

    def __init__(self, teacher_state: dict[str, torch.Tensor], teacher_config, student_config, layers: list[int]):
        self.teacher_hidden = teacher_config.hidden_size
        head_size = teacher_config.hidden_size // teacher_config.num_attention_heads
        self.hidden = top(hidden_importance(teacher_state, teacher_config.hidden_size), student_config.hidden_size)
        self.heads = {t: head_dims(top(head_importance(teacher_state, t, teacher_config.num_attention_heads),
                                       student_config.num_attention_heads), head_size) for t in layers}
        self.neurons = {t: top(neuron_importance(teacher_state, t), student_config.intermediate_size) for t in layers}

    def slice(self, key: str, tensor: torch.Tensor, target: torch.Size) -> torch.Tensor:
        """`tensor` (teacher parameter `key`) cut to the student's `target` shape."""
        match = _LAYER.search(key)
        layer = int(match.group(1)) if match else None
        out = tensor
        for dim, size in enumerate(target):
            if out.shape[dim] == size:
                continue
            indices = self._indices(key, layer, dim)
            if indices is self.hidden and out.shape[dim] != self.teacher_hidden:
                indices = None
            if indices is None or len(indices) != size:
                break
            out = out.index_select(dim, indices.to(out.device))
        if out.shape != target:
            raise DistilflowError(f"cannot slice the teacher's {key} {tuple(tensor.shape)} to {tuple(target)}: "
                                  "use student.init: random")
        return out.clone()

    def _indices(self, key: str, layer: int | None, dim: int) -> torch.Tensor:
        if layer is not None and ".attention.self." in key and dim == 0:
            return self.heads[layer]
        if layer is not None and key.endswith("attention.output.dense.weight") and dim == 1:
            return self.heads[layer]
        if layer is not None and ".intermediate.dense." in key and dim == 0:
            return self.neurons[layer]
        if layer is not None and _is_ffn_output(key) and dim == 1:
            return self.neurons[layer]
        return self.hidden
