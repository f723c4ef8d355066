import numpy as np
import torch

from distilflow.config import MaskingConfig
from distilflow.data.batching import pad_batch
from distilflow.data.masking import IGNORE_INDEX, DynamicMasker

VOCAB, PAD, CLS, SEP, MASK = 1000, 0, 1, 2, 3
SPECIAL = [PAD, CLS, SEP, MASK]


def _batch(rows=64, length=128, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, VOCAB, (rows, length), generator=generator)
    ids[:, 0], ids[:, -1] = CLS, SEP
    attention = torch.ones_like(ids)
    ids[::2, 100:], attention[::2, 100:] = PAD, 0  # half the rows padded
    return ids, attention


def _masker(**config):
    return DynamicMasker(MaskingConfig(smoothing=0.0, **config), VOCAB, SPECIAL, MASK)


def test_proportions_hold_statistically():
    ids, attention = _batch()
    batch = _masker()(ids, attention, torch.Generator().manual_seed(0))
    targets = batch.labels != IGNORE_INDEX
    eligible = (attention.bool() & (ids > SEP)).sum().item()
    assert targets.sum().item() == round(0.15 * eligible)
    n = targets.sum().item()
    became_mask = (batch.input_ids[targets] == MASK).float().mean().item()
    unchanged = (batch.input_ids[targets] == ids[targets]).float().mean().item()
    became_random = 1 - became_mask - unchanged
    # n is about 1,100 targets: 3 standard deviations of a binomial proportion is about 0.036 at p=0.8
    assert abs(became_mask - 0.8) < 3 * np.sqrt(0.8 * 0.2 / n)
    assert abs(became_random - 0.1) < 3 * np.sqrt(0.1 * 0.9 / n) + 0.003  # a random pick may equal the original
    assert abs(unchanged - 0.1) < 3 * np.sqrt(0.1 * 0.9 / n) + 0.003
    assert torch.equal(batch.labels[targets], ids[targets])
    assert torch.equal(batch.input_ids[~targets], ids[~targets])


def test_special_and_padding_tokens_are_never_masked_or_inserted():
    ids, attention = _batch()
    masker = _masker(mask_fraction=0.0, random_fraction=1.0)
    for seed in range(5):
        batch = masker(ids, attention, torch.Generator().manual_seed(seed))
        targets = batch.labels != IGNORE_INDEX
        assert not targets[attention == 0].any()
        assert not targets[(ids == CLS) | (ids == SEP)].any()
        assert not torch.isin(batch.input_ids[targets], torch.tensor(SPECIAL)).any()


def test_same_sequence_gets_a_new_mask_every_epoch():
    ids, attention = _batch(rows=4)
    masker, generator = _masker(), torch.Generator().manual_seed(0)
    epochs = [masker(ids, attention, generator).labels != IGNORE_INDEX for _ in range(3)]
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])


def test_masking_never_changes_the_stored_sequences():
    """Masks are drawn per batch: the tensor the sequences came from is left exactly as it was."""
    ids, attention = _batch(rows=4)
    stored = ids.clone()
    masked = _masker()(ids, attention, torch.Generator().manual_seed(0))
    assert not torch.equal(masked.input_ids, stored)  # the batch was masked...
    assert torch.equal(ids, stored)  # ...but not in place


def test_same_seed_same_masks():
    ids, attention = _batch(rows=4)
    first = _masker()(ids, attention, torch.Generator().manual_seed(7))
    second = _masker()(ids, attention, torch.Generator().manual_seed(7))
    assert torch.equal(first.input_ids, second.input_ids) and torch.equal(first.labels, second.labels)


def test_smoothing_masks_rare_tokens_more_often():
    frequent, rare = 10, 11
    ids = torch.full((64, 128), frequent)
    ids[:, ::8] = rare  # 1 token in 8 is rare
    counts = np.ones(VOCAB)
    counts[frequent], counts[rare] = 7_000_000, 1_000_000
    smoothed = DynamicMasker(MaskingConfig(smoothing=0.7), VOCAB, SPECIAL, MASK, counts)
    uniform = _masker()
    attention = torch.ones_like(ids)
    share = {}
    for name, masker in {"smoothed": smoothed, "uniform": uniform}.items():
        labels = masker(ids, attention, torch.Generator().manual_seed(0)).labels
        share[name] = (labels == rare).sum().item() / (labels != IGNORE_INDEX).sum().item()
    assert abs(share["uniform"] - 1 / 8) < 0.03
    assert share["smoothed"] > share["uniform"] + 0.05


def test_dynamic_padding_pads_to_longest():
    ids, attention = pad_batch([[1, 5, 2], [1, 2]], PAD)
    assert ids.tolist() == [[1, 5, 2], [1, 2, PAD]] and attention.tolist() == [[1, 1, 1], [1, 1, 0]]
