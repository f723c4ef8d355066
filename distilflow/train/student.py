"""The student: the teacher's architecture at the same width with fewer layers.

Initialised from the teacher: embeddings and MLM head copied, student layer i taken from teacher
layer `layers[i]`. Works for masked-LMs whose layers are named `...layer.<index>...` and whose head
is `cls` (BERT family) or `lm_head` (RoBERTa family).
"""

from __future__ import annotations

import copy
import re
import sys

import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

from distilflow.config import StudentConfig
from distilflow.errors import DistilflowError

LAYER_KEY = re.compile(r"(^|\.)layer\.(\d+)\.")


def select_teacher_layers(n_teacher: int, n_student: int, rule: str | list[int]) -> list[int]:
    """Which teacher layer initialises each student layer."""
    if n_student > n_teacher:
        raise DistilflowError(f"student.n_layers={n_student} exceeds the teacher's {n_teacher} layers: choose fewer")
    if isinstance(rule, list):
        if len(rule) != n_student or any(not 0 <= i < n_teacher for i in rule) or sorted(set(rule)) != rule:
            raise DistilflowError(
                f"student.layers={rule} must list {n_student} increasing teacher layers in 0..{n_teacher - 1}"
            )
        return list(rule)
    stride = n_teacher // n_student
    if rule == "every_other":
        return [i * stride for i in range(n_student)]
    if rule == "every_other_top":
        return [n_teacher - 1 - (n_student - 1 - i) * stride for i in range(n_student)]
    if n_student == 1:
        return [n_teacher - 1]
    # "spread": evenly from first to last; for 12 -> 6 this is DistilBERT's 0, 2, 4, 7, 9, 11.
    return [round(i * (n_teacher - 1) / (n_student - 1)) for i in range(n_student)]


def student_layers(n_teacher: int, config: StudentConfig) -> list[int]:
    """The teacher layers the student is made of (half of them unless student.n_layers says otherwise)."""
    return select_teacher_layers(n_teacher, config.n_layers or max(1, n_teacher // 2), config.layers)


def build_student(teacher: PreTrainedModel, config: StudentConfig, seed: int = 0) -> tuple[PreTrainedModel, list[int]]:
    layers = student_layers(teacher.config.num_hidden_layers, config)
    student_config = copy.deepcopy(teacher.config)
    student_config.num_hidden_layers = len(layers)
    torch.manual_seed(seed)  # the random-init baseline must be reproducible too
    student = AutoModelForMaskedLM.from_config(student_config)
    if config.init == "teacher":
        student.load_state_dict(map_teacher_weights(teacher.state_dict(), layers), strict=True)
    return student, layers


def map_teacher_weights(teacher_state: dict[str, torch.Tensor], layers: list[int]) -> dict[str, torch.Tensor]:
    """Teacher weights renamed for the student: layer layers[i] becomes layer i, others dropped."""
    new_index = {teacher_index: student_index for student_index, teacher_index in enumerate(layers)}
    student_state = {}
    for key, tensor in teacher_state.items():
        match = LAYER_KEY.search(key)
        if match is None:
            student_state[key] = tensor.clone()
        elif int(match.group(2)) in new_index:
            renamed = f"{key[: match.start(2)]}{new_index[int(match.group(2))]}{key[match.end(2):]}"
            student_state[renamed] = tensor.clone()
    return student_state


def split_masked_lm(model: PreTrainedModel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(encoder, head): lets the loss run the vocabulary projection only where it is needed."""
    for head_name in ("cls", "lm_head"):
        if hasattr(model, head_name):
            return model.base_model, getattr(model, head_name)
    raise DistilflowError(
        f"{type(model).__name__} is not supported: its MLM head is neither 'cls' (BERT) nor 'lm_head' (RoBERTa)"
    )


class MaskedLMView(torch.nn.Module):
    """A masked-LM as (last hidden states, fp32 logits at chosen flat positions).

    One module, so that DistributedDataParallel sees the whole forward; the vocabulary projection
    runs only at `rows` and in fp32 (softmax over 30k words is where bf16 rounding hurts).
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.encoder, self.head = split_masked_lm(model)
        self._prepares_masks = builds_masks_with_transformers(self.encoder)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """attention_mask: (rows, length), or None for a batch with no padding (MicroBatch.encoder_mask)."""
        if attention_mask is not None and self._prepares_masks:
            attention_mask = prepared_mask(self.encoder, attention_mask)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if rows is None:
            return hidden, None
        selected = hidden.flatten(0, 1).index_select(0, rows)
        with torch.autocast(hidden.device.type, enabled=False):
            return hidden, self.head(selected.float())


def builds_masks_with_transformers(encoder: torch.nn.Module) -> bool:
    """Whether the encoder's modelling code makes its attention mask with transformers' masking utilities
    (BERT, RoBERTa, DistilBERT, ModernBERT, ...), which take a prepared 4-d mask as it is."""
    return hasattr(sys.modules.get(type(encoder).__module__), "create_bidirectional_mask")


def prepared_mask(encoder: torch.nn.Module, attention_mask: torch.Tensor) -> torch.Tensor:
    """The (rows, 1, length, length) mask the encoder would make from a 2-d padding mask, made without asking
    whether it is all ones: that check (`padding_mask.all()`) waits for the GPU at every forward."""
    placeholder = torch.empty((*attention_mask.shape, 0), dtype=encoder.dtype, device=attention_mask.device)
    return create_bidirectional_mask(config=encoder.config, inputs_embeds=placeholder, attention_mask=attention_mask,
                                     allow_is_bidirectional_skip=False)
