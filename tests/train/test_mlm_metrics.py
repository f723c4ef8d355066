import pytest
import torch
from datasets import Dataset

from distilflow.train.mlm_metrics import masked_lm_metrics


@pytest.fixture
def sequences(tokenizer):
    texts = ["the cat sat on the mat near the door of the old house."] * 8
    return Dataset.from_dict({"input_ids": tokenizer(texts)["input_ids"]})


def test_metrics_of_a_model_that_always_says_the(tiny_teacher, tokenizer, sequences):
    model = type(tiny_teacher)(tiny_teacher.config)
    model.load_state_dict(tiny_teacher.state_dict())
    the = tokenizer.convert_tokens_to_ids("the")
    with torch.no_grad():
        model.cls.predictions.bias.zero_()
        model.cls.predictions.bias[the] = 100.0  # every position predicts "the"
    metrics = masked_lm_metrics(model, sequences, tokenizer, teacher=tiny_teacher)
    assert metrics["top1_majority_share"] == 1.0
    assert 0 < metrics["mlm_accuracy"] < 0.6  # right exactly where the masked word was "the"
    assert metrics["mlm_loss"] > 1.0
    same = masked_lm_metrics(model, sequences, tokenizer, teacher=model)
    assert same["teacher_agreement"] == 1.0


def test_masks_are_the_same_for_every_call(tiny_teacher, tokenizer, sequences):
    first = masked_lm_metrics(tiny_teacher, sequences, tokenizer)
    assert masked_lm_metrics(tiny_teacher, sequences, tokenizer) == first


def test_an_empty_evaluation_set_is_an_error_not_a_perfect_score(tiny_teacher, tokenizer):
    from distilflow.errors import DistilflowError

    with pytest.raises(DistilflowError, match="no tokens to evaluate: the evaluation set has 0 sequences"):
        masked_lm_metrics(tiny_teacher, Dataset.from_dict({"input_ids": []}), tokenizer)
