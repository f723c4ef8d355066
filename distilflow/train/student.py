"""The student: the teacher's architecture with fewer layers, and optionally narrower (student.hidden_size,
intermediate_size, num_attention_heads): a stock model of the teacher's family, with its tokenizer.

Initialised from the teacher: embeddings and MLM head copied, student layer i taken from teacher
layer `layers[i]`; a narrower student gets the teacher's most important channels, heads and neurons of
those (train/width.py). The layers and the head are found from the model's structure (train/architecture.py):
BERT, RoBERTa, DistilBERT, DeBERTa-v2 and ModernBERT teachers alike.
"""

from __future__ import annotations

import copy
import sys
from typing import Callable

import torch
from transformers import AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

from distilflow.config import StudentConfig
from distilflow.errors import DistilflowError
from distilflow.train.architecture import encoder_layers, layer_of, masked_lm_head, select_layers_config
from distilflow.train.width import WidthSlicer


# The families whose weights train/width.py slices for a narrower student (BERT's parameter names); other families
# (ModernBERT, DeBERTa-v2, DistilBERT) distil at the teacher's width with fewer layers, or narrower from random.
SLICED_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert")


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


def student_shape(teacher_config: PretrainedConfig, config: StudentConfig) -> PretrainedConfig:
    """The student's model config: the teacher's, with the student's depth and width (checked here, one line each,
    from the teacher's config alone: before any weights or data load)."""
    layers = student_layers(teacher_config.num_hidden_layers, config)
    student_config = copy.deepcopy(teacher_config)
    select_layers_config(student_config, layers)
    if not (config.hidden_size or config.intermediate_size or config.num_attention_heads):
        return student_config  # the teacher's width: only the depth changes, in any family
    ffn = getattr(teacher_config, "intermediate_size", None)
    if ffn is None:
        raise DistilflowError(f"a narrower student needs a teacher whose config names its feed-forward width "
                              f"intermediate_size (BERT, RoBERTa, DeBERTa, ModernBERT); {teacher_config.model_type} "
                              "does not: leave student.hidden_size, intermediate_size and num_attention_heads unset")
    hidden, heads = teacher_config.hidden_size, teacher_config.num_attention_heads
    head_size = hidden // heads
    width = config.hidden_size or hidden
    shape = {"hidden_size": width, "num_attention_heads": config.num_attention_heads or max(1, width // head_size),
             "intermediate_size": config.intermediate_size or ffn * width // hidden}
    for name, value in shape.items():
        if value > getattr(teacher_config, name):
            raise DistilflowError(f"student.{name}={value} exceeds the teacher's {getattr(teacher_config, name)}: "
                                  "a student is at most as wide as its teacher")
    if width % shape["num_attention_heads"]:
        raise DistilflowError(f"student.hidden_size={width} does not split into {shape['num_attention_heads']} attention "
                              f"heads: give student.num_attention_heads a divisor of {width}")
    if config.init == "teacher" and teacher_config.model_type not in SLICED_FAMILIES:
        raise DistilflowError(f"a narrower student is sliced from BERT/RoBERTa-style layers (train/width.py), and the "
                              f"teacher is a {teacher_config.model_type}: keep the teacher's width (leave "
                              "student.hidden_size, intermediate_size and num_attention_heads unset) or set "
                              "student.init: random")
    if config.init == "teacher" and width // shape["num_attention_heads"] != head_size:
        raise DistilflowError(f"student.init=teacher keeps whole teacher heads of {head_size} units: give "
                              f"student.num_attention_heads={width // head_size} for hidden_size {width}, or "
                              "student.init: random")
    for name, value in shape.items():
        setattr(student_config, name, value)
    return student_config


def build_student(teacher: PreTrainedModel, config: StudentConfig, seed: int = 0,
                  auto_class=AutoModelForMaskedLM) -> tuple[PreTrainedModel, list[int]]:
    """The student of `teacher`'s family and task (`auto_class`: a masked-LM, or a sequence classifier whose head
    is copied as the MLM head is), and the teacher layers it was made of."""
    layers = student_layers(teacher.config.num_hidden_layers, config)
    torch.manual_seed(seed)  # the random-init baseline must be reproducible too
    student = auto_class.from_config(student_shape(teacher.config, config))
    if config.init == "teacher":
        prefix, _ = encoder_layers(teacher)
        reshape = None
        if student.config.hidden_size != teacher.config.hidden_size or \
                getattr(student.config, "intermediate_size", None) != getattr(teacher.config, "intermediate_size", None):
            slicer, targets = WidthSlicer(teacher.state_dict(), teacher.config, student.config, layers), student.state_dict()
            reshape = lambda key, tensor, renamed: slicer.slice(key, tensor, targets[renamed].shape)  # noqa: E731
        state = map_teacher_weights(teacher.state_dict(), layers, prefix, reshape)
        # Every student weight comes from the teacher; a teacher weight the student has no place for is left out
        # (ModernBERT's first layer has no attention norm, the embeddings being normalised: a later teacher layer
        # copied there loses its own).
        kept = student.state_dict().keys()
        student.load_state_dict({key: tensor for key, tensor in state.items() if key in kept}, strict=True)
    return student, layers


def map_teacher_weights(teacher_state: dict[str, torch.Tensor], layers: list[int], prefix: str,
                        reshape: Callable[[str, torch.Tensor, str], torch.Tensor] | None = None
                        ) -> dict[str, torch.Tensor]:
    """Teacher weights renamed for the student: layer layers[i] (keys `<prefix><layers[i]>.`) becomes layer i, other
    layers dropped; `reshape(teacher key, tensor, student key)` cuts each to a narrower student's shape."""
    new_index = {teacher_index: student_index for student_index, teacher_index in enumerate(layers)}
    student_state = {}
    for key, tensor in teacher_state.items():
        layer = layer_of(key, prefix)
        if layer is None:
            renamed = key
        elif layer in new_index:
            renamed = f"{prefix}{new_index[layer]}{key[len(prefix) + len(str(layer)):]}"
        else:
            continue
        student_state[renamed] = reshape(key, tensor, renamed) if reshape else tensor.clone()
    return student_state


def split_masked_lm(model: PreTrainedModel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(encoder, head): lets the loss run the vocabulary projection only where it is needed."""
    return model.base_model, masked_lm_head(model)


PROJECTION = "distill_hidden_projection"


def attach_projection(student: PreTrainedModel, teacher_width: int, seed: int) -> None:
    """TinyBERT's W_h: a learned map of the student's hidden states to the teacher's width, for the hidden-state
    losses of a narrower student. It trains with the student (so it is in its checkpoints) and is dropped before the
    student is saved (drop_projection): the saved model is a stock one."""
    torch.manual_seed(seed)
    projection = torch.nn.Linear(student.config.hidden_size, teacher_width, bias=False)
    student.add_module(PROJECTION, projection.to(next(student.parameters()).device))


def drop_projection(student: PreTrainedModel) -> None:
    if hasattr(student, PROJECTION):
        delattr(student, PROJECTION)


class MaskedLMView(torch.nn.Module):
    """A masked-LM as (last hidden states, fp32 logits at chosen flat positions).

    One module, so that DistributedDataParallel sees the whole forward; the vocabulary projection
    runs only at `rows` and in fp32 (softmax over 30k words is where bf16 rounding hurts). A student with
    a projection (attach_projection) gives its hidden states in the teacher's width.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.encoder, self.head = split_masked_lm(model)
        self.projection = getattr(model, PROJECTION, None)
        self._prepares_masks = builds_masks_with_transformers(self.encoder)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """attention_mask: (rows, length), or None for a batch with no padding (MicroBatch.encoder_mask)."""
        if attention_mask is not None and self._prepares_masks:
            attention_mask = prepared_mask(self.encoder, attention_mask)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if rows is None:
            return self.project(hidden), None
        selected = hidden.flatten(0, 1).index_select(0, rows)
        with torch.autocast(hidden.device.type, enabled=False):
            logits = self.head(selected.float())
        return self.project(hidden), logits

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.projection is None else self.projection(hidden)


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
