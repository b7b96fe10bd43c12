"""The method registry: one line per method. Adding a baseline = a file + a line here."""

from __future__ import annotations


def _methods() -> dict:
    from baselines.ddpm import DDPM

    return {
        "ddpm": DDPM,
    }


def method_names() -> list[str]:
    return sorted(_methods())


def get_method(name: str):
    methods = _methods()
    if name not in methods:
        raise KeyError(f"unknown method {name!r}; registered: {sorted(methods)}")
    return methods[name]


def build_method(config: dict):
    """Instantiate from a run config {"method": {"name": ..., knobs}, "net": {...}}."""
    mcfg = dict(config.get("method") or {})
    if "name" not in mcfg:
        raise KeyError("config.method.name is required (one of %s)" % method_names())
    return get_method(mcfg["name"])(mcfg, config.get("net"))
