"""One dataset identity: the answer to "which data is this", recorded by training (in the run
identity, ``e2ed2.runs``), by sampling (the data the model trained on, in the sample set's meta)
and by every metric reference and result, and checked where they meet (``check_same_data``: a
sample set against the reference it is scored on, the real-data floor against its reference).
A file is its content hash (SHA-256), a folder its listing, a built-in set its name.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (a dataset file; also the feature networks' weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def identity(spec: str | os.PathLike) -> dict:
    """The dataset ``spec`` names: a file's content hash, a folder's listing, or a built-in name."""
    p = Path(str(spec))
    if p.is_file():
        return {"file": p.name, "sha256": file_digest(p)}
    if p.is_dir():
        listing = sorted((f.name, f.stat().st_size) for f in p.iterdir() if f.is_file())
        return {"folder": p.name, "listing_sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest()}
    return {"builtin": str(spec)}


def identity_text(ident: dict) -> str:
    """``mnist5k.npz (sha256 1a2b3c4d5e6f)`` — an identity as an error message names it."""
    if "sha256" in ident:
        return f"{ident['file']} (sha256 {ident['sha256'][:12]})"
    if "listing_sha256" in ident:
        return f"folder {ident['folder']} (listing {ident['listing_sha256'][:12]})"
    return f"built-in {ident.get('builtin')!r}"


def check_same_data(a: dict | None, b: dict | None, what_a: str, what_b: str) -> None:
    """``a`` and ``b`` are one dataset: equal content hashes (or listings, or built-in names);
    a ValueError naming both otherwise, and when either side records none (written before
    identities were recorded: make it again)."""
    for ident, what in ((a, what_a), (b, what_b)):
        if not isinstance(ident, dict) or not ident:
            raise ValueError(f"{what} records no dataset identity (written by an older harness); make it again")
    key = next((k for k in ("sha256", "listing_sha256", "builtin") if k in a and k in b), None)
    if key is None or a[key] != b[key]:
        raise ValueError(f"{what_a} is of {identity_text(a)} but {what_b} is of {identity_text(b)}: "
                         f"they must be of the same dataset")
