"""Step batches: what each step holds depends only on its number, however it is split."""

import torch
from datasets import Dataset

from distilflow.config import MaskingConfig
from distilflow.data.batching import MaskingCollator, MicroBatch, StepOrder, pad_batch, sequence_lengths
from distilflow.data.masking import IGNORE_INDEX, build_masker


def _sequences(tokenizer, n=96):
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, 40, (n,), generator=generator).tolist()
    body = lambda length: torch.randint(2000, 8000, (length - 2,), generator=generator).tolist()  # noqa: E731
    return [[tokenizer.cls_token_id, *body(length), tokenizer.sep_token_id] for length in lengths]


def test_each_epoch_is_a_permutation_and_steps_are_reproducible():
    order = StepOrder(n_sequences=50, global_batch=8, seed=3)
    epoch = [i for step in range(order.steps_per_epoch) for i in order.indices(step)]
    assert len(epoch) == len(set(epoch)) == 48  # 6 full steps, the remainder dropped
    assert StepOrder(50, 8, seed=3).indices(4) == order.indices(4)
    assert order.indices(6) != order.indices(0)  # the next epoch is reshuffled


def test_grouping_by_length_cuts_padding_and_keeps_the_epoch(tokenizer):
    sequences = _sequences(tokenizer, n=400)
    lengths = [len(s) for s in sequences]
    plain, grouped = StepOrder(400, 16, seed=0), StepOrder(400, 16, seed=0, lengths=lengths, group_window=25)

    def padded_tokens(order):
        return sum(16 * max(lengths[i] for i in order.indices(step)) for step in range(order.steps_per_epoch))

    assert padded_tokens(grouped) < 0.8 * padded_tokens(plain)
    seen = sorted(i for step in range(grouped.steps_per_epoch) for i in grouped.indices(step))
    assert seen == list(range(400))
    assert sequence_lengths(Dataset.from_dict({"input_ids": sequences})) == lengths


def test_a_step_is_the_same_tokens_and_masks_however_it_is_split(tokenizer):
    sequences = _sequences(tokenizer, n=16)
    masker = build_masker(MaskingConfig(smoothing=0.0), tokenizer)

    def rows(micro_batch_size, accumulation, world_size):
        found = []
        for rank in range(world_size):
            collator = MaskingCollator(masker, tokenizer.pad_token_id, seed=7, micro_batch_size=micro_batch_size,
                                       accumulation_steps=accumulation, rank=rank, world_size=world_size)
            step = collator((5, sequences))
            assert step.global_targets > 0 and step.global_tokens == sum(len(s) for s in sequences)
            for micro in step.micro_batches:
                labels = torch.full_like(micro.input_ids, IGNORE_INDEX)
                labels.view(-1)[micro.target_index] = micro.target_labels
                for row in range(len(micro.input_ids)):
                    n = int(micro.attention_mask[row].sum())
                    found.append((micro.input_ids[row, :n].tolist(), labels[row, :n].tolist()))
        return sorted(found)

    whole = rows(16, 1, 1)
    assert len(whole) == 16
    assert rows(4, 4, 1) == whole == rows(4, 2, 2) == rows(8, 1, 2)
    other_step = MaskingCollator(masker, tokenizer.pad_token_id, 7, 16, 1)((6, sequences)).micro_batches[0]
    assert not torch.equal(other_step.input_ids, MaskingCollator(masker, tokenizer.pad_token_id, 7, 16, 1)(
        (5, sequences)).micro_batches[0].input_ids)  # a fresh mask for every step


def test_index_tensors_point_at_targets_and_tokens():
    input_ids, attention = pad_batch([[1, 5, 6, 2], [1, 7, 2]], pad_id=0)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[0, 2], labels[1, 1] = 6, 7
    micro = MicroBatch.from_masked(input_ids, attention, labels)
    assert micro.token_index.tolist() == [0, 1, 2, 3, 4, 5, 6]  # row 1's pad sits at flat position 7
    assert micro.target_index.tolist() == [2, 5] and micro.target_labels.tolist() == [6, 7]
    assert micro.target_in_tokens.tolist() == [2, 5]
    input_ids, attention = pad_batch([[1, 2], [1, 5, 6, 2]], pad_id=0)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[1, 2] = 6
    micro = MicroBatch.from_masked(input_ids, attention, labels)
    assert micro.target_index.tolist() == [6] and micro.target_in_tokens.tolist() == [4]  # 2 real tokens before
