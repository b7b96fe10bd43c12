"""The dataset kinds: what a workflow dataset's ``prepare:`` may say, one entry each (torch-free).

A kind turns a dataset block of the workflow config into the harness's ``.npz``
(``results/<run>/data/<name>.npz``, format in ``e2ed2.data``). Read by the config check (the
valid ``prepare:`` values and the keys each needs), the plan (the images' shape at DAG build,
which sizes the UNet) and the data rules (workflows/rules/data.smk):

- a kind with a ``module`` is prepared by one generic rule, ``python -m MODULE ARGS --out NPZ``,
  ARGS from ``args(name, block)``: adding such a kind is its module, its entry here and a dataset
  that names it (docs/DESIGN.md, "Add a dataset kind");
- ``convert``, ``cifar10`` and ``coco30k`` have rules of their own in data.smk (a user's files;
  network downloads kept as inputs of their own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetKind:
    name: str  # the value of `prepare:`
    doc: str
    # (channels, resolution) of the prepared images, from the dataset block alone; None: read from
    # the block's `source:` header (e2ed2.data.peek_shape), which needs no conversion either
    shape: Callable[[dict], tuple[int, int]] | None = None
    required: tuple[str, ...] = ()  # keys the dataset block must set
    keys: tuple[str, ...] = ()  # more block keys it reads (beside the schema's typed ones)
    module: str | None = None  # the generic rule's `python -m MODULE`; None: rules of its own in data.smk
    args: Callable[[str, dict], list[str]] = lambda name, block: []  # MODULE's arguments (before --out)


KINDS: dict[str, DatasetKind] = {k.name: k for k in (
    DatasetKind("convert", "a built-in set (mnist5k, digits), a user .npz or an image folder (`source:`, `keys:`)"),
    DatasetKind("cifar10", "CIFAR-10 (torchvision download): 50,000 train / 10,000 held-out 32×32 images",
                shape=lambda block: (3, 32)),
    DatasetKind("coco30k", "COCO-2014: 30K fixed-seed val2014 pairs (held out) + n_train train2014 pairs",
                shape=lambda block: (3, int(block["resolution"])), required=("coco", "resolution")),
)}


def kind_of(block: dict) -> DatasetKind:
    return KINDS[block["prepare"]]
