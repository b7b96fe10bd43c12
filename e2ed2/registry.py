"""The method registry: one line per method. Adding a baseline = a file + a line here."""

from __future__ import annotations


def _methods() -> dict:
    from baselines.consistency import ConsistencyDistillation, ConsistencyTraining
    from baselines.ddim import DDIM
    from baselines.ddpm import DDPM
    from e2ed2.e2e import E2ED2

    return {
        "ddpm": DDPM,
        "ddim": DDIM,
        "cd": ConsistencyDistillation,
        "ct": ConsistencyTraining,
        "e2ed2": E2ED2,
    }


def method_names() -> list[str]:
    return sorted(_methods())


def get_method(name: str):
    methods = _methods()
    if name not in methods:
        raise KeyError(f"unknown method {name!r}; registered: {sorted(methods)}")
    return methods[name]


def build_method(config: dict, restoring: bool = False):
    """Instantiate from a run config {"method": {"name": ..., knobs}, "net": {...}}.

    ``restoring``: weights come from a checkpoint next (see ``Method``)."""
    mcfg = dict(config.get("method") or {})
    if "name" not in mcfg:
        raise KeyError("config.method.name is required (one of %s)" % method_names())
    return get_method(mcfg["name"])(mcfg, config.get("net"), restoring=restoring)
