"""A student narrower than its teacher: its shape from student.*, its weights sliced from the teacher's most
important channels, heads and neurons (distilflow/train/width.py), and the learned projection that lets the
hidden-state losses compare across widths, dropped before the student is saved."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, BertForMaskedLM

from distilflow.config import LossConfig, StudentConfig
from distilflow.data.masking import MaskedBatch
from distilflow.errors import DistilflowError
from distilflow.train.losses import DistillationLoss, require_loss_fits
from distilflow.train.student import (PROJECTION, MaskedLMView, attach_projection, build_student, drop_projection,
                                      student_shape)
from distilflow.train.width import top
from tests.conftest import tiny_bert_config

HIDDEN = [1, 4, 6, 9, 12, 15, 20, 22, 25, 27, 28, 29, 30, 31, 2, 3]  # the channels made important below


@pytest.fixture(scope="module")
def marked_teacher(tokenizer) -> BertForMaskedLM:
    """A tiny teacher (32 wide, 2 heads of 16, 64 neurons) whose important channels, heads and neurons are known:
    HIDDEN's LayerNorm scales, head 1 of every layer and its odd neurons are made larger than the rest."""
    torch.manual_seed(3)
    teacher = BertForMaskedLM(tiny_bert_config(len(tokenizer))).eval()
    with torch.no_grad():
        for name, parameter in teacher.named_parameters():
            if name.endswith("LayerNorm.weight"):
                parameter.fill_(0.5)
                parameter[HIDDEN] = 2.0
        for layer in teacher.bert.encoder.layer:
            layer.attention.self.value.weight[16:] *= 3
            layer.intermediate.dense.weight[1::2] *= 3
    return teacher


def test_the_narrow_student_is_the_teachers_most_important_slice(marked_teacher):
    student, layers = build_student(marked_teacher, StudentConfig(n_layers=2, layers="every_other_top", hidden_size=16))
    config = student.config
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size, config.num_hidden_layers) == \
        (16, 1, 32, 2)  # one head of the teacher's size 16; the teacher's FFN ratio of 2
    hidden = torch.tensor(sorted(HIDDEN))
    head = torch.arange(16, 32)  # head 1
    neurons = torch.arange(1, 64, 2)
    teacher_embeddings = marked_teacher.bert.embeddings.word_embeddings.weight
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher_embeddings[:, hidden])
    for s, t in enumerate(layers):
        mine, theirs = student.bert.encoder.layer[s], marked_teacher.bert.encoder.layer[t]
        assert torch.equal(mine.attention.self.query.weight, theirs.attention.self.query.weight[head][:, hidden])
        assert torch.equal(mine.attention.self.value.bias, theirs.attention.self.value.bias[head])
        assert torch.equal(mine.attention.output.dense.weight, theirs.attention.output.dense.weight[hidden][:, head])
        assert torch.equal(mine.intermediate.dense.weight, theirs.intermediate.dense.weight[neurons][:, hidden])
        assert torch.equal(mine.output.dense.weight, theirs.output.dense.weight[hidden][:, neurons])
        assert torch.equal(mine.output.LayerNorm.bias, theirs.output.LayerNorm.bias[hidden])
    predictions, theirs = student.cls.predictions, marked_teacher.cls.predictions
    assert torch.equal(predictions.transform.dense.weight, theirs.transform.dense.weight[hidden][:, hidden])
    assert torch.equal(predictions.bias, theirs.bias)
    assert predictions.decoder.weight.data_ptr() == student.bert.embeddings.word_embeddings.weight.data_ptr()  # tied


def test_a_narrower_ffn_alone_keeps_the_width_and_slices_only_neurons(marked_teacher):
    student, layers = build_student(marked_teacher, StudentConfig(n_layers=1, intermediate_size=8))
    assert student.config.hidden_size == 32 and student.config.intermediate_size == 8
    teacher_layer = marked_teacher.bert.encoder.layer[layers[0]]
    kept = top(teacher_layer.intermediate.dense.weight.norm(dim=1) * teacher_layer.output.dense.weight.norm(dim=0), 8)
    assert torch.equal(student.bert.encoder.layer[0].intermediate.dense.weight, teacher_layer.intermediate.dense.weight[kept])
    assert torch.equal(student.bert.encoder.layer[0].attention.self.key.weight, teacher_layer.attention.self.key.weight)


def test_top_keeps_the_largest_in_their_order():
    assert top(torch.tensor([0.1, 3.0, 2.0, 3.0, 0.5]), 3).tolist() == [1, 2, 3]


@pytest.mark.parametrize(("student", "message"), [
    (StudentConfig(hidden_size=64), "student.hidden_size=64 exceeds the teacher's 32"),
    (StudentConfig(intermediate_size=128), "student.intermediate_size=128 exceeds the teacher's 64"),
    (StudentConfig(hidden_size=15, num_attention_heads=2), "student.hidden_size=15 does not split into 2 attention heads"),
    (StudentConfig(hidden_size=16, num_attention_heads=2), "student.init=teacher keeps whole teacher heads of 16 units: "
                                                           "give student.num_attention_heads=1"),
])
def test_a_shape_that_cannot_be_made_is_one_line_from_the_configs(marked_teacher, student, message):
    with pytest.raises(DistilflowError, match=message):
        student_shape(marked_teacher.config, student)


def test_random_init_may_split_its_width_into_other_heads(marked_teacher):
    student, _ = build_student(marked_teacher, StudentConfig(hidden_size=16, num_attention_heads=2, init="random"))
    assert student.config.num_attention_heads == 2 and student.config.hidden_size == 16


@pytest.mark.parametrize(("loss", "message"), [
    (LossConfig(alpha_attention=1.0), "alpha_attention needs as many attention heads in the student as in the teacher"),
    (LossConfig(alpha_relation=1.0, relation_heads=3), "relation_heads=3 does not divide the student's 16 hidden units"),
])
def test_a_loss_the_shapes_cannot_take_is_one_line(marked_teacher, loss, message):
    with pytest.raises(DistilflowError, match=message):
        require_loss_fits(loss, student_shape(marked_teacher.config, StudentConfig(hidden_size=16)), marked_teacher.config)
    require_loss_fits(LossConfig(alpha_relation=1.0, relation_heads=2, alpha_hidden=1.0),
                      student_shape(marked_teacher.config, StudentConfig(hidden_size=16)), marked_teacher.config)


def test_the_hidden_losses_train_a_projection_that_the_saved_student_leaves_behind(marked_teacher, tokenizer, tmp_path):
    student, _ = build_student(marked_teacher, StudentConfig(n_layers=2, hidden_size=16))
    attach_projection(student, marked_teacher.config.hidden_size, seed=0)
    projection = getattr(student, PROJECTION)
    assert tuple(projection.weight.shape) == (32, 16)
    encoded = tokenizer(["the cat sat on the mat today", "a dog ran"], padding=True, return_tensors="pt")
    labels = encoded["input_ids"].clone().fill_(-100)
    labels[:, 2] = encoded["input_ids"][:, 2]
    batch = MaskedBatch(encoded["input_ids"], encoded["attention_mask"], labels)
    terms = DistillationLoss(LossConfig(alpha_hidden=1.0))(MaskedLMView(student), MaskedLMView(marked_teacher), batch)
    assert {"cos", "hidden", "ce", "mlm"} <= set(terms.parts)
    terms.total.backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0

    drop_projection(student)
    student.save_pretrained(tmp_path)
    assert not [key for key in load_file(tmp_path / "model.safetensors") if PROJECTION in key]
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert reloaded.config.hidden_size == 16 and not hasattr(reloaded, PROJECTION)


PUBLISHED_PARAMETERS = {"DistilBERT 6x768": 66.4e6, "MiniLM-style 6x384": 22.7e6, "TinyBERT-style 4x312": 14.5e6}


def test_the_paper_recipes_shapes_build_from_a_bert_base_shaped_teacher():
    """params/paper.yaml's commented student shapes, each built from BERT-base's config (random weights, no
    download), come out with the published parameter counts (the encoder; the MLM head's transform adds a few)."""
    import re

    import yaml
    from transformers import BertConfig

    from tests.conftest import ROOT

    text = (ROOT / "params" / "paper.yaml").read_text()
    shapes = {name: yaml.safe_load(value) for name, value in re.findall(r"#\s+(\S+ \d+x\d+):\s+(\{.*\})", text)}
    assert set(shapes) == set(PUBLISHED_PARAMETERS)
    torch.manual_seed(0)
    teacher = BertForMaskedLM(BertConfig())  # bert-base-uncased's shape
    for name, shape in shapes.items():
        student, _ = build_student(teacher, StudentConfig(**shape))
        encoder = sum(p.numel() for p in student.bert.parameters())
        assert encoder == pytest.approx(PUBLISHED_PARAMETERS[name], rel=0.03), name
        layers, hidden = (int(x) for x in name.split()[-1].split("x"))
        assert (student.config.num_hidden_layers, student.config.hidden_size) == (layers, hidden)
