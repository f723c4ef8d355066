import pytest
from transformers import BertForMaskedLM

from distilflow.base.pretrained import load_masked_lm
from distilflow.errors import DistilflowError
from distilflow.train.teacher_head import freeze_all_but_head, missing_head_weights, require_head_or_training
from tests.conftest import MINILM_ID


def test_the_real_minilm_teacher_is_detected_as_headless():
    model, missing = load_masked_lm(MINILM_ID, role="teacher")
    head = missing_head_weights(model, missing)
    assert head and all(key.startswith("cls.predictions.") for key in head)
    with pytest.raises(DistilflowError, match="no masked-LM head.*head.enabled=true"):
        require_head_or_training(MINILM_ID, head, head_training_enabled=False)


def test_a_complete_masked_lm_has_no_missing_head(teacher_with_head_dir, headless_teacher_dir):
    model, missing = load_masked_lm(str(teacher_with_head_dir))
    assert missing_head_weights(model, missing) == set()
    model, missing = load_masked_lm(str(headless_teacher_dir))
    assert missing_head_weights(model, missing)


def test_only_head_and_top_layers_train(tiny_teacher):
    model = BertForMaskedLM(tiny_teacher.config)
    freeze_all_but_head(model, unfreeze_top_layers=1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(name.startswith("cls.predictions.transform") for name in trainable)
    assert any(name.startswith("bert.encoder.layer.3.") for name in trainable)
    assert not any(name.startswith(("bert.encoder.layer.2.", "bert.embeddings.")) for name in trainable)
    with pytest.raises(DistilflowError, match="exceeds"):
        freeze_all_but_head(model, unfreeze_top_layers=9)
