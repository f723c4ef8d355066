"""Packing follows RoBERTa's FULL-SENTENCES: whole sentences are appended to a sequence until the next one
would not fit in `max_seq_length` (a sentence longer than that is cut into pieces), each sequence wrapped in
the tokenizer's own special tokens."""

from __future__ import annotations

import re

from transformers import PreTrainedTokenizerBase

# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets) before white space.
# A regex is enough here: a sentence cut in the wrong place only changes where packing breaks.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")

def split_sentences(paragraph: str) -> list[str]:
    return [sentence for sentence in SENTENCE_END.split(paragraph) if sentence.strip()]


def pack_sentences(sentences: list[list[int]], body_length: int) -> list[list[int]]:
    """Greedily pack token lists into bodies of at most `body_length` tokens, keeping sentences whole."""
    bodies: list[list[int]] = []
    current: list[int] = []
    for tokens in sentences:
        if len(current) + len(tokens) > body_length and current:
            bodies.append(current)
            current = []
        while len(tokens) > body_length:  # a sentence longer than a whole sequence
            bodies.append(tokens[:body_length])
            tokens = tokens[body_length:]
        current = current + tokens
    if current:
        bodies.append(current)
    return bodies


def tokenize_and_pack(paragraphs: list[str], tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> list[list[int]]:
    sentences = [sentence for paragraph in paragraphs for sentence in split_sentences(paragraph)]
    if not sentences:
        return []
    # Sentences are tokenized whole and cut to max_seq_length by packing, so the tokenizer's warning about
    # sequences longer than the model's limit is noise here.
    token_lists = tokenizer(sentences, add_special_tokens=False, verbose=False)["input_ids"]
    prefix, suffix = special_token_wrapping(tokenizer)
    body_length = max_seq_length - len(prefix) - len(suffix)
    return [prefix + body + suffix for body in pack_sentences(token_lists, body_length)]


def special_token_wrapping(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one sequence: ([CLS], [SEP]) for BERT, (<s>, </s>) for RoBERTa."""
    word = tokenizer("a", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next(i for i in range(len(wrapped)) if wrapped[i : i + len(word)] == word)
    return wrapped[:start], wrapped[start + len(word) :]
