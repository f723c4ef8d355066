"""Training batches: which sequences make each optimizer step, padded and masked by a DataLoader collator.

The unit is the optimizer step. Step s takes a fixed slice of a seeded per-epoch permutation (the
global batch: micro_batch_size x gradient_accumulation_steps x processes sequences), draws its MLM
mask from a generator seeded with (seed, s), sorts the sequences by length (less padding; the
step's gradient does not depend on their order) and cuts them into micro-batches, each process
keeping its own. So the data and masks of a step depend only on its number: a resumed run, a run
split into smaller micro-batches or spread over more processes sees exactly the same tokens and
masks, and worker processes need no shared state.

Each micro-batch carries index tensors of the positions the loss needs (targets, real tokens),
computed here on the CPU, so the training step never asks the GPU which positions are masked.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch.utils.data import DataLoader, Dataset

from distilflow.data.masking import IGNORE_INDEX, DynamicMasker


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # (rows, length), masks applied
    attention_mask: torch.Tensor  # (rows, length)
    target_index: torch.Tensor  # flat positions (row * length + column) of the MLM targets
    target_labels: torch.Tensor  # the original token at each target
    token_index: torch.Tensor  # flat positions of the real (non-pad) tokens
    target_in_tokens: torch.Tensor  # where each target sits among token_index (KD over all tokens)
    # Known on the CPU when the batch is made: a batch without padding goes to the encoders with no mask,
    # so that transformers never asks the GPU whether the mask is all ones (a host sync per forward).
    padded: bool = True

    @property
    def encoder_mask(self) -> torch.Tensor | None:
        """The attention mask the encoders need: none when every row is full length."""
        return self.attention_mask if self.padded else None

    def to(self, device: torch.device, non_blocking: bool = False) -> MicroBatch:
        return MicroBatch(*(t.to(device, non_blocking=non_blocking) for t in self._tensors()), padded=self.padded)

    def pin_memory(self) -> MicroBatch:
        return MicroBatch(*(t.pin_memory() for t in self._tensors()), padded=self.padded)

    def _tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in fields(self) if f.name != "padded"]

    @classmethod
    def from_masked(cls, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> MicroBatch:
        is_token = attention_mask.flatten().bool()
        is_target = labels.flatten() != IGNORE_INDEX
        target_index = torch.nonzero(is_target).flatten()
        token_rank = torch.cumsum(is_token.long(), 0) - 1  # position of each token among the real tokens
        token_index = torch.nonzero(is_token).flatten()
        return cls(input_ids, attention_mask, target_index, labels.flatten()[target_index], token_index,
                   token_rank[target_index], padded=len(token_index) < attention_mask.numel())


@dataclass
class StepBatch:
    """One process's share of one optimizer step, with counts over the whole global batch."""

    step: int
    micro_batches: list[MicroBatch]
    global_targets: int  # MLM targets in the global batch (all micro-batches, all processes)
    global_tokens: int  # real tokens in the global batch

    def pin_memory(self) -> StepBatch:
        return StepBatch(self.step, [m.pin_memory() for m in self.micro_batches], self.global_targets,
                         self.global_tokens)


class StepOrder:
    """Sequence indices of each optimizer step: a fresh seeded permutation per epoch, remainder dropped.

    With `lengths`, DistilBERT's group_by_size: within windows of `group_window` steps the sequences
    are sorted by length and cut into batches, and the batches are shuffled, so that each batch holds
    sequences of similar length (less padding, which is pure waste) while the epoch stays random.
    """

    def __init__(self, n_sequences: int, global_batch: int, seed: int, lengths: list[int] | None = None,
                 group_window: int = 50):
        self.n_sequences, self.global_batch, self.seed = n_sequences, global_batch, seed
        self.lengths = torch.as_tensor(lengths) if lengths is not None else None
        self.group_window = group_window
        self.steps_per_epoch = n_sequences // global_batch
        self._epoch, self._batches = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> list[int]:
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._epoch_batches(epoch)
        return self._batches[offset].tolist()

    def _epoch_batches(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.n_sequences, generator=generator)[: self.steps_per_epoch * self.global_batch]
        if self.lengths is None:
            return order.view(self.steps_per_epoch, self.global_batch)
        windows = order.split(self.global_batch * self.group_window)
        by_length = torch.cat([window[torch.argsort(self.lengths[window], stable=True)] for window in windows])
        batches = by_length.view(self.steps_per_epoch, self.global_batch)
        return batches[torch.randperm(self.steps_per_epoch, generator=generator)]


def sequence_lengths(sequences) -> list[int]:
    """Token count of every sequence of a datasets.Dataset, read from Arrow without decoding the ids."""
    import pyarrow.compute as pc

    return pc.list_value_length(sequences.with_format("arrow")["input_ids"]).to_pylist()


class StepDataset(Dataset):
    """Map-style over step numbers: item s is (s, the token lists of step s's global batch)."""

    def __init__(self, sequences, order: StepOrder):
        self.sequences, self.order = sequences, order

    def __getitem__(self, step: int) -> tuple[int, list[list[int]]]:
        return step, self.sequences[self.order.indices(step)]["input_ids"]


class MaskingCollator:
    """Pads and masks a step's global batch, then cuts out this process's micro-batches."""

    def __init__(self, masker: DynamicMasker, pad_id: int, seed: int, micro_batch_size: int,
                 accumulation_steps: int, rank: int = 0, world_size: int = 1, pad_to: int | None = None):
        self.masker, self.pad_id, self.seed, self.pad_to = masker, pad_id, seed, pad_to
        self.micro_batch_size, self.accumulation_steps = micro_batch_size, accumulation_steps
        self.rank, self.world_size = rank, world_size

    def __call__(self, item: tuple[int, list[list[int]]]) -> StepBatch:
        step, sequences = item
        sequences = sorted(sequences, key=len, reverse=True)
        input_ids, attention_mask = pad_batch(sequences, self.pad_id, self.pad_to)
        masked = self.masker(input_ids, attention_mask, mask_generator(self.seed, step))
        # Chunk k of similar lengths goes to process k % world_size: every process's micro-step m
        # holds sequences of about the same length, so none waits long for the others.
        mine = []
        for micro in range(self.accumulation_steps):
            chunk = micro * self.world_size + self.rank
            rows = slice(chunk * self.micro_batch_size, (chunk + 1) * self.micro_batch_size)
            length = self.pad_to or int(attention_mask[rows].sum(1).max())
            mine.append(MicroBatch.from_masked(masked.input_ids[rows, :length], attention_mask[rows, :length],
                                               masked.labels[rows, :length]))
        return StepBatch(step, mine, global_targets=int((masked.labels != IGNORE_INDEX).sum()),
                         global_tokens=int(attention_mask.sum()))


def mask_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))


def pad_batch(sequences: list[list[int]], pad_id: int, pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence (or to `pad_to`, for fixed shapes under torch.compile)."""
    length = pad_to or max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.as_tensor(ids[:length], dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def step_loader(sequences, collator: MaskingCollator, order: StepOrder, first_step: int, last_step: int,
                workers: int, pin_memory: bool) -> DataLoader:
    """Steps first_step..last_step-1, prepared `workers` processes ahead (0: in the training process)."""
    # Its own generator: starting a DataLoader draws a seed, which must not shift the global RNG that
    # dropout uses (a resumed run would then differ from an uninterrupted one).
    return DataLoader(StepDataset(sequences, order), sampler=range(first_step, last_step), batch_size=None,
                      collate_fn=collator, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=2 if workers > 0 else None, generator=torch.Generator().manual_seed(0))
