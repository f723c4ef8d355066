"""Teachers beyond BERT through the command line (issue 44, item 6): a tiny random ModernBERT and DeBERTa-v2, each
built from its config and saved as a user's folder (no download), distilled by `distilflow prepare`, `teacher` and
`distill` in their own processes; the student is a stock model of the teacher's family that fill-mask loads."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForMaskedLM, DebertaV2Config, ModernBertConfig, pipeline

from tests.conftest import fresh_user_environment, tiny_params


def _config(family: str, tokenizer):
    shape = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
             "intermediate_size": 64, "pad_token_id": tokenizer.pad_token_id, "max_position_embeddings": 128}
    if family == "modernbert":
        ids = {"bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id,
               "cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id}
        return ModernBertConfig(**shape, **ids)
    return DebertaV2Config(**shape)


@pytest.mark.parametrize("family", ["modernbert", "deberta-v2"])
def test_a_modernbert_or_deberta_teacher_distils_through_the_cli(family, tmp_path, small_corpus, tokenizer):
    teacher = tmp_path / "my-teacher"
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(_config(family, tokenizer)).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    raw = tiny_params(tmp_path, small_corpus, teacher)
    raw["head"]["enabled"] = False  # it has its masked-LM head
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = fresh_user_environment(tmp_path / "home")
    for stage in ("prepare", "teacher", "distill"):
        done = subprocess.run([str(Path(sys.executable).parent / "distilflow"), stage, "--params", "params.yaml"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{stage}: {done.stderr[-2000:]}"
    student = AutoModelForMaskedLM.from_pretrained(tmp_path / "student")
    assert student.config.model_type == family and student.config.num_hidden_layers == 2
    filled = pipeline("fill-mask", model=str(tmp_path / "student"))(f"a {tokenizer.mask_token} day.")
    assert len(filled) == 5 and all(0 <= guess["score"] <= 1 for guess in filled)
