"""Captions → token ids for the UNet's small learned text encoder.

A word-level hashing tokenizer: lower-cased words are mapped to ids in [2, vocab_size) by a
stable CRC32 hash, 1 marks the start, 0 pads. No vocabulary file to ship or to keep in sync,
identical on every machine, and it works unchanged on COCO captions. An all-zero row is the
empty ("unconditional") caption used for classifier-free guidance.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import torch

PAD, BOS = 0, 1
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(captions: Sequence[str], vocab_size: int = 4096, max_len: int = 16) -> torch.Tensor:
    """Return int64 [len(captions), max_len]; longer captions are truncated."""
    out = torch.zeros(len(captions), max_len, dtype=torch.long)
    for row, caption in enumerate(captions):
        words = _WORD.findall(str(caption).lower())[: max_len - 1]
        ids = [BOS] + [2 + zlib.crc32(w.encode()) % (vocab_size - 2) for w in words]
        out[row, : len(ids)] = torch.tensor(ids)
    return out
