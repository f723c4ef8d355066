import pytest
import torch
from transformers import AutoModelForMaskedLM, pipeline

from distilflow.base.model_folder import count_parameters
from distilflow.config import StudentConfig
from distilflow.errors import DistilflowError
from distilflow.train.student import build_student, select_teacher_layers
from tests.conftest import assert_layers_copied


def test_layer_rules():
    assert select_teacher_layers(6, 3, "every_other") == [0, 2, 4]
    assert select_teacher_layers(12, 6, "every_other") == [0, 2, 4, 6, 8, 10]
    assert select_teacher_layers(12, 6, "spread") == [0, 2, 4, 7, 9, 11]  # DistilBERT's choice
    assert select_teacher_layers(6, 3, "every_other_top") == [1, 3, 5]  # keeps the top layer
    assert select_teacher_layers(12, 6, "every_other_top") == [1, 3, 5, 7, 9, 11]
    assert select_teacher_layers(6, 2, "every_other_top") == [2, 5]
    assert select_teacher_layers(12, 6, [0, 2, 4, 7, 9, 11]) == [0, 2, 4, 7, 9, 11]
    with pytest.raises(DistilflowError, match="increasing"):
        select_teacher_layers(6, 3, [0, 0, 5])
    with pytest.raises(DistilflowError, match="exceeds"):
        select_teacher_layers(4, 6, "every_other")


def test_student_is_initialised_from_the_chosen_teacher_layers(tiny_teacher):
    student, layers = build_student(tiny_teacher, StudentConfig(n_layers=2, layers="spread"))
    assert layers == [0, 3] and student.config.num_hidden_layers == 2
    assert student.config.hidden_size == tiny_teacher.config.hidden_size
    assert_layers_copied(student, tiny_teacher, layers)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, tiny_teacher.bert.embeddings.word_embeddings.weight)
    assert torch.equal(student.cls.predictions.transform.dense.weight, tiny_teacher.cls.predictions.transform.dense.weight)
    assert torch.equal(student.cls.predictions.bias, tiny_teacher.cls.predictions.bias)
    # the decoder stays tied to the embeddings, as in the teacher
    assert student.cls.predictions.decoder.weight.data_ptr() == student.bert.embeddings.word_embeddings.weight.data_ptr()
    assert count_parameters(student) < count_parameters(tiny_teacher)


def test_default_depth_is_half_the_teacher(tiny_teacher):
    student, layers = build_student(tiny_teacher, StudentConfig())
    assert student.config.num_hidden_layers == 2 and layers == [1, 3]  # every_other_top: the top layer kept


def test_random_init_shares_nothing_with_the_teacher(tiny_teacher):
    student, _ = build_student(tiny_teacher, StudentConfig(init="random"))
    assert not torch.equal(student.bert.encoder.layer[0].attention.self.query.weight,
                           tiny_teacher.bert.encoder.layer[0].attention.self.query.weight)


def test_saved_student_loads_as_masked_lm_and_fill_mask(tmp_path, tiny_teacher, tokenizer):
    student, _ = build_student(tiny_teacher, StudentConfig())
    student.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(reloaded.bert.encoder.layer[1].output.dense.weight, student.bert.encoder.layer[1].output.dense.weight)
    predictions = pipeline("fill-mask", model=str(tmp_path))("i completed writing my [MASK].")
    # the pipeline's top 5 are the student's own top 5 at the masked position, in order
    inputs = tokenizer("i completed writing my [MASK].", return_tensors="pt")
    position = int((inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero())
    with torch.no_grad():
        probabilities = reloaded(**inputs).logits[0, position].softmax(-1)
    top = probabilities.topk(5)
    assert [p["token"] for p in predictions] == top.indices.tolist()
    assert [p["score"] for p in predictions] == pytest.approx(top.values.tolist(), rel=1e-4)
