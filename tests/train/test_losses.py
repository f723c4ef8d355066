"""The loss terms, including the seed notes' worked example "I completed writing my ___"."""


import pytest
import torch
import torch.nn.functional as F

from distilflow.config import LossConfig
from distilflow.data.masking import IGNORE_INDEX, MaskedBatch
from distilflow.train.losses import DistillationLoss, hidden_cosine_loss, soft_target_loss, softmax_with_temperature
from distilflow.train.student import split_masked_lm

WORDS = ["homework", "cake", "assignment", "car", "book"]
# The seed's teacher at T=2. Its T=1 and T=5 rows must follow from the same logits.
SEED_TEACHER_T2 = [0.935, 0.001, 0.017, 0.001, 0.046]
SEED_TEACHER_T1 = [0.995, 0.000, 0.001, 0.000, 0.002]
# The seed's student soft prediction at T=5 and the same student at T=1.
SEED_STUDENT_T5 = [0.363, 0.134, 0.242, 0.059, 0.200]
SEED_STUDENT_T1 = [0.838, 0.005, 0.115, 0.000, 0.038]


def _logits_from(probabilities, temperature):
    return temperature * torch.log(torch.tensor(probabilities, dtype=torch.float64))


def test_temperature_softens_the_teacher_and_reveals_dark_knowledge():
    teacher = _logits_from(SEED_TEACHER_T2, 2.0)
    rows = {t: softmax_with_temperature(teacher, t) for t in (1.0, 2.0, 5.0)}
    assert torch.allclose(rows[1.0], F.softmax(teacher, -1))  # T=1 is the plain softmax
    assert torch.allclose(rows[1.0], torch.tensor(SEED_TEACHER_T1, dtype=torch.float64), atol=0.003)
    assert torch.allclose(rows[2.0], torch.tensor(SEED_TEACHER_T2, dtype=torch.float64) / sum(SEED_TEACHER_T2))
    # Homework loses mass as T grows and the runners-up (book, assignment) become visible.
    assert rows[1.0][0] > rows[2.0][0] > rows[5.0][0]
    entropy = {t: -(p * p.log()).sum() for t, p in rows.items()}
    assert entropy[1.0] < entropy[2.0] < entropy[5.0]
    for probabilities in rows.values():
        assert [WORDS[i] for i in probabilities.argsort(descending=True)[:3]] == ["homework", "book", "assignment"]
    # The seed's T=5 row sums to 0.885, so it is not exactly a softmax; homework and book agree to 0.03.
    assert rows[5.0][0] == pytest.approx(0.637, abs=0.03)
    assert rows[5.0][4] == pytest.approx(0.191, abs=0.03)


def test_distillation_and_student_loss_pull_the_student_to_the_teacher():
    teacher = _logits_from(SEED_TEACHER_T2, 2.0).float().unsqueeze(0)
    student = _logits_from(SEED_STUDENT_T5, 5.0).float().unsqueeze(0).requires_grad_(True)
    hard_target = torch.tensor([0])  # homework
    optimizer = torch.optim.SGD([student], lr=0.5)
    before = soft_target_loss(student, teacher, temperature=5.0).item()
    for _ in range(50):
        loss = soft_target_loss(student, teacher, 5.0) + F.cross_entropy(student, hard_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = soft_target_loss(student, teacher, 5.0).item()
    assert after < before / 4
    assert F.softmax(student, -1)[0, 0] > 0.9


def test_soft_target_loss_is_t_squared_kl_and_zero_for_identical_logits():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 50), torch.randn(6, 50)
    for temperature in (1.0, 2.0, 4.0):
        p_teacher = F.softmax(teacher / temperature, -1)
        expected = (p_teacher * (p_teacher.log() - F.log_softmax(student / temperature, -1))).sum(-1).mean()
        assert soft_target_loss(student, teacher, temperature).item() == pytest.approx(
            temperature**2 * expected.item(), rel=1e-4)
        assert soft_target_loss(teacher, teacher, temperature).item() == pytest.approx(0.0, abs=1e-5)


def test_cosine_loss():
    hidden = torch.randn(5, 8)
    assert hidden_cosine_loss(hidden, 3 * hidden).item() == pytest.approx(0.0, abs=1e-6)
    assert hidden_cosine_loss(hidden, -hidden).item() == pytest.approx(2.0, abs=1e-6)


def _masked_batch(tokenizer, rows=3, length=12):
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (rows, length))
    attention = torch.ones_like(ids)
    attention[0, 8:] = 0
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3] = ids[:, 3]
    labels[1, 5] = ids[1, 5]
    masked = ids.clone()
    masked[labels != IGNORE_INDEX] = tokenizer.mask_token_id
    return MaskedBatch(masked, attention, labels)


def test_loss_terms_match_their_definitions(tiny_teacher, tokenizer):
    from distilflow.config import StudentConfig
    from distilflow.train.student import build_student

    student, _ = build_student(tiny_teacher, StudentConfig())
    student.eval()  # no dropout, so the reference forward below sees the same numbers
    torch.manual_seed(1)
    with torch.no_grad():  # a tiny random model's logits are nearly flat: make the two distributions differ
        student.cls.predictions.bias.copy_(torch.randn_like(student.cls.predictions.bias))
    batch = _masked_batch(tokenizer)
    config = LossConfig(temperature=2.0, alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.0, alpha_mse=0.5)
    terms = DistillationLoss(config)(student, tiny_teacher, batch)
    assert set(terms.parts) == {"ce", "mlm", "cos", "mse"}

    targets = batch.labels != IGNORE_INDEX
    with torch.no_grad():
        s_out = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        t_out = tiny_teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    s_logits, t_logits = s_out.logits[targets], t_out.logits[targets]
    real = batch.attention_mask.bool()
    expected = {
        "mlm": F.cross_entropy(s_logits, batch.labels[targets]),
        "ce": 4.0 * F.kl_div(F.log_softmax(s_logits / 2, -1), F.softmax(t_logits / 2, -1), reduction="batchmean"),
        "cos": (1 - F.cosine_similarity(s_out.hidden_states[-1][real], t_out.hidden_states[-1][real], -1)).mean(),
        "mse": F.mse_loss(s_logits, t_logits, reduction="sum") / len(s_logits),
    }
    for name, value in expected.items():
        assert value.item() > 1e-5, name  # a real difference, not two zeros
        assert terms.parts[name].item() == pytest.approx(value.item(), rel=1e-4), name
    weighted = 5 * expected["ce"] + 2 * expected["mlm"] + expected["cos"] + 0.5 * expected["mse"]
    assert terms.total.item() == pytest.approx(weighted.item(), rel=1e-4)
    assert {"loss", "loss_ce", "loss_mlm", "loss_cos", "loss_mse"} == set(terms.as_floats())


def test_vocabulary_projection_runs_only_where_needed(tiny_teacher, tokenizer):
    batch = _masked_batch(tokenizer)
    _, head = split_masked_lm(tiny_teacher)  # a chain of the model's own modules: the last one projects
    rows_projected = []
    hook = head[-1].register_forward_hook(lambda module, args, output: rows_projected.append(output.shape[0]))
    try:
        DistillationLoss(LossConfig(kd_positions="masked"))(tiny_teacher, tiny_teacher, batch)
        masked_rows = list(rows_projected)
        rows_projected.clear()
        DistillationLoss(LossConfig(kd_positions="all"))(tiny_teacher, tiny_teacher, batch)
    finally:
        hook.remove()
    n_targets = int((batch.labels != IGNORE_INDEX).sum())
    assert masked_rows == [n_targets, n_targets]  # student and teacher, masked positions only
    assert rows_projected == [int(batch.attention_mask.sum())] * 2


def test_mlm_only_loss_needs_no_teacher(tiny_teacher, tokenizer):
    batch = _masked_batch(tokenizer)
    terms = DistillationLoss(LossConfig(alpha_ce=0, alpha_cos=0, alpha_mlm=1))(tiny_teacher, None, batch)
    assert set(terms.parts) == {"mlm"}
    # the student's own masked-LM cross-entropy over the masked positions, as a plain forward computes it
    logits = tiny_teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    expected = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE_INDEX)
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_batch_without_padding_reaches_the_encoders_with_no_mask_and_the_same_loss(tiny_teacher):
    """No mask for a full batch keeps transformers off its `padding_mask.all()` check, a host sync per forward
    on a GPU; a padded batch gets the prepared 4-d mask, which transformers takes as it is (no check either)."""
    from distilflow.config import StudentConfig
    from distilflow.data.batching import MicroBatch
    from distilflow.train.student import MaskedLMView, build_student

    student, _ = build_student(tiny_teacher, StudentConfig(n_layers=2), seed=0)
    student.eval()
    for model in (student, tiny_teacher):
        split_masked_lm(model)  # the head is found once per model (one forward of its own), before the hooks
    seen = []
    hooks = [model.base_model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["attention_mask"]),
                                                        with_kwargs=True) for model in (student, tiny_teacher)]
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 2000, (4, 16), generator=generator)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, 3] = input_ids[:, 3]
    full = MicroBatch.from_masked(input_ids, torch.ones_like(input_ids), labels)
    assert not full.padded and full.encoder_mask is None
    loss = DistillationLoss(LossConfig())
    without_mask = loss(student, tiny_teacher, full).total
    assert seen == [None, None]  # student and teacher, no mask
    seen.clear()
    with_mask = loss(MaskedLMView(student), MaskedLMView(tiny_teacher),
                     MicroBatch(*full._tensors(), padded=True)).total  # the same batch, its all-ones mask passed
    assert [mask.shape for mask in seen] == [(4, 1, 16, 16)] * 2  # prepared 4-d masks, not the 2-d one
    assert torch.allclose(with_mask, without_mask, rtol=1e-6, atol=0)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 10:] = 0
    assert MicroBatch.from_masked(input_ids, attention_mask, labels).padded
    for hook in hooks:
        hook.remove()
