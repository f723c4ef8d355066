"""Teachers beyond BERT (issue 44, item 6): the layers and the masked-LM head are found from each model's
structure, so a student is made, initialised, trained and saved alike for every family, each a tiny random
model built from its config (no download)."""

import pytest
import torch
from transformers import (AutoModelForMaskedLM, BertConfig, DebertaV2Config, DistilBertConfig, ModernBertConfig,
                          RobertaConfig)

from distilflow.config import LossConfig, StudentConfig
from distilflow.data.masking import IGNORE_INDEX, MaskedBatch
from distilflow.errors import DistilflowError
from distilflow.train.architecture import encoder_layers
from distilflow.train.losses import DistillationLoss
from distilflow.train.student import MaskedLMView, build_student, split_masked_lm
from distilflow.train.teacher_head import freeze_all_but_head
from tests.conftest import assert_layers_copied

SHAPE = {"vocab_size": 120, "pad_token_id": 0}
FAMILIES = {
    "bert": BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, **SHAPE),
    "roberta": RobertaConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                             max_position_embeddings=40, **SHAPE),
    "distilbert": DistilBertConfig(dim=32, n_layers=4, n_heads=4, hidden_dim=64, **SHAPE),
    "deberta-v2": DebertaV2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                                  **SHAPE),
    "modernbert": ModernBertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                                   bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2, **SHAPE),
}


def _teacher(family: str):
    torch.manual_seed(0)
    return AutoModelForMaskedLM.from_config(FAMILIES[family]).eval()


def _batch() -> MaskedBatch:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 120, (2, 10), generator=generator)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3] = ids[:, 3]
    ids[:, 3] = 4  # the [MASK] of this made-up vocabulary
    return MaskedBatch(ids, torch.ones_like(ids), labels)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_student_of_every_family_copies_its_teachers_layers_head_and_embeddings(family, tmp_path):
    teacher = _teacher(family)
    student, layers = build_student(teacher, StudentConfig(n_layers=2, layers="every_other_top"), seed=0)
    assert type(student) is type(teacher) and layers == [1, 3]
    assert_layers_copied(student, teacher, layers)
    t_layers_prefix, _ = encoder_layers(teacher)
    outside = {k: v for k, v in teacher.state_dict().items() if not k.startswith(t_layers_prefix)}
    assert all(torch.equal(student.state_dict()[k], v) for k, v in outside.items())  # embeddings, head, norms
    # the head found from the structure gives the model's own logits, through the view the losses use
    batch = _batch()
    student.eval()  # no dropout: the two forwards must see the same network
    with torch.no_grad():
        rows = torch.arange(batch.input_ids.numel())
        _, logits = MaskedLMView(student)(batch.input_ids, batch.attention_mask, rows)
        expected = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.allclose(logits, expected.flatten(0, 1), atol=1e-5)
    student.save_pretrained(tmp_path)
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path)) is type(teacher)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_distils_with_the_default_loss_and_trains_only_its_head_and_top_layers(family):
    teacher = _teacher(family)
    student, _ = build_student(teacher, StudentConfig(n_layers=2), seed=0)
    student.train()
    terms = DistillationLoss(LossConfig(alpha_hidden=1.0))(student, teacher, _batch())  # + TinyBERT's hidden MSE
    terms.total.backward()
    assert torch.isfinite(terms.total) and set(terms.parts) == {"ce", "mlm", "cos", "hidden"}
    assert terms.parts["hidden"] > 0
    assert all(p.grad is not None for p in encoder_layers(student)[1].parameters())

    trainable = freeze_all_but_head(teacher, unfreeze_top_layers=1)
    prefix, layers = encoder_layers(teacher)
    top = {f"{prefix}3.{name}" for name, _ in layers[3].named_parameters()}
    head = {name for name, p in teacher.named_parameters() if not name.startswith(f"{teacher.base_model_prefix}.")}
    assert {name for name, p in teacher.named_parameters() if p.requires_grad} == top | (head - {
        name for name, p in teacher.named_parameters() if p is teacher.get_input_embeddings().weight})
    assert trainable == sum(p.numel() for p in teacher.parameters() if p.requires_grad)
    assert split_masked_lm(teacher)[1] is split_masked_lm(teacher)[1]  # found once per model


def test_modernberts_global_and_local_layers_follow_the_layers_kept():
    teacher = _teacher("modernbert")
    student, layers = build_student(teacher, StudentConfig(n_layers=2, layers=[0, 1]), seed=0)
    assert student.config.layer_types == [teacher.config.layer_types[i] for i in layers] == [
        "full_attention", "sliding_attention"]


def test_a_narrower_student_of_a_family_without_intermediate_size_is_one_line():
    with pytest.raises(DistilflowError, match="^a narrower student needs .* distilbert does not"):
        build_student(_teacher("distilbert"), StudentConfig(n_layers=2, hidden_size=16), seed=0)


@pytest.mark.parametrize("family", ["modernbert", "deberta-v2"])
def test_a_narrower_student_sliced_from_a_family_without_berts_layers_is_one_line_naming_it(family):
    with pytest.raises(DistilflowError, match=f"^a narrower student is sliced .* the teacher is a {family}: .*init: random"):
        build_student(_teacher(family), StudentConfig(n_layers=2, hidden_size=16), seed=0)
    random = build_student(_teacher(family), StudentConfig(n_layers=2, hidden_size=16, init="random"), seed=0)[0]
    assert random.config.hidden_size == 16  # the way the message offers works


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_the_head_of_a_teacher_frozen_in_bf16_is_found_as_the_training_step_runs_it(family):
    from distilflow.base.devices import frozen_teacher

    teacher = _teacher(family)
    teacher = frozen_teacher(teacher, encoder_layers(teacher)[1], torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in encoder_layers(teacher)[1].parameters() if p.dim() == 2} == {torch.bfloat16}
    assert teacher.get_output_embeddings().weight.dtype == torch.float32  # the vocabulary projection stays fp32
    assert any(module is teacher.get_output_embeddings() for module in split_masked_lm(teacher)[1][-1].modules())
