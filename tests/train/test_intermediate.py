"""Intermediate-layer losses: each term equals its definition computed from the model's own eager
attention probabilities and hidden states, is zero for a student identical to the teacher, and
trains without switching the encoder off its fast attention path."""

import copy

import pytest
import torch
import torch.nn.functional as F

from distilflow.config import LossConfig, StudentConfig
from distilflow.train.intermediate import uniform_layer_map
from distilflow.train.losses import DistillationLoss
from distilflow.train.student import build_student
from tests.train.test_losses import _masked_batch

INSIDE = dict(alpha_ce=0.0, alpha_mlm=0.0, alpha_cos=0.0, alpha_hidden=1.0, alpha_attention=1.0, alpha_relation=1.0)


def test_uniform_layer_map_is_evenly_spaced_and_ends_at_the_last_layer():
    assert uniform_layer_map(6, 3) == [1, 3, 5]
    assert uniform_layer_map(12, 6) == [1, 3, 5, 7, 9, 11]
    assert uniform_layer_map(4, 2) == [1, 3]
    assert uniform_layer_map(4, 4) == [0, 1, 2, 3]


def _eager(model):
    """The same weights with attention probabilities computed explicitly (the reference)."""
    reference = copy.deepcopy(model)
    reference.config._attn_implementation = "eager"
    for module in reference.modules():
        if hasattr(module, "config"):
            module.config._attn_implementation = "eager"
    return reference


def _kl_rows(teacher_probs, student_probs, real):
    """Σ over real query rows of KL(teacher || student), averaged over heads."""
    kl = (teacher_probs * (teacher_probs.clamp_min(1e-30).log() - student_probs.clamp_min(1e-30).log())).sum(-1)
    return kl.mean(1)[real].sum()


def _relation_probs(x, heads, real):
    batch, length, width = x.shape
    split = x.view(batch, length, heads, width // heads).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) / (width // heads) ** 0.5
    return scores.masked_fill(~real[:, None, None, :], float("-inf")).softmax(-1)


def test_each_term_matches_its_definition(tiny_teacher, tokenizer):
    student, _ = build_student(tiny_teacher, StudentConfig())  # 2 of the teacher's 4 layers
    student.eval()
    torch.manual_seed(3)
    with torch.no_grad():  # make the student differ from the teacher layers it was copied from
        for parameter in student.bert.encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    batch = _masked_batch(tokenizer)
    terms = DistillationLoss(LossConfig(**INSIDE, relation_heads=1))(student, tiny_teacher, batch)
    assert set(terms.parts) == {"hidden", "attention", "relation"}

    real = batch.attention_mask.bool()
    tokens = int(real.sum())
    layer_map = uniform_layer_map(4, 2)  # [1, 3]
    captured = {}
    hooks = [module.register_forward_hook(lambda m, i, o, key=key: captured.__setitem__(key, o))
             for key, module in [(("s", kind), getattr(student.bert.encoder.layer[1].attention.self, kind))
                                 for kind in ("query", "key", "value")]
             + [(("t", kind), getattr(tiny_teacher.bert.encoder.layer[3].attention.self, kind))
                for kind in ("query", "key", "value")]]
    with torch.no_grad():
        s_out = _eager(student)(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                output_hidden_states=True, output_attentions=True)
        t_out = _eager(tiny_teacher)(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                     output_hidden_states=True, output_attentions=True)
        student(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        tiny_teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    for hook in hooks:
        hook.remove()
    pairs = list(enumerate(layer_map))
    expected = {
        # hidden_states[i + 1] is layer i's output
        "hidden": sum(F.mse_loss(s_out.hidden_states[s + 1][real], t_out.hidden_states[t + 1][real],
                                 reduction="none").mean(-1).sum() for s, t in pairs) / 2 / tokens,
        "attention": sum(_kl_rows(t_out.attentions[t], s_out.attentions[s], real) for s, t in pairs) / 2 / tokens,
        "relation": sum(_kl_rows(_relation_probs(captured["t", kind], 1, real),
                                 _relation_probs(captured["s", kind], 1, real), real)
                        for kind in ("query", "key", "value")) / 3 / tokens,
    }
    for name, value in expected.items():
        assert value.item() > 1e-6, name
        assert terms.parts[name].item() == pytest.approx(value.item(), rel=1e-4), name


def test_a_student_identical_to_the_teacher_has_zero_intermediate_loss(tiny_teacher, tokenizer):
    clone = copy.deepcopy(tiny_teacher)  # 4 layers against 4: the map is the identity
    terms = DistillationLoss(LossConfig(**INSIDE))(clone, tiny_teacher, _masked_batch(tokenizer))
    for name, value in terms.parts.items():
        assert abs(value.item()) < 1e-6, name


def test_intermediate_losses_train_the_student_on_the_fast_attention_path(tiny_teacher, tokenizer):
    student, _ = build_student(tiny_teacher, StudentConfig(init="random"))
    assert student.config._attn_implementation == "sdpa"
    loss_fn = DistillationLoss(LossConfig(**INSIDE))
    batch = _masked_batch(tokenizer)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        terms = loss_fn(student, tiny_teacher, batch)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(terms.as_floats())
    for name in ("loss", "loss_hidden", "loss_attention"):  # (two random tiny models' relations are ~uniform)
        assert losses[-1][name] < 0.5 * losses[0][name], name
    assert student.config._attn_implementation == "sdpa"
    assert not student.bert.encoder.layer[0]._forward_hooks  # no hook left behind
