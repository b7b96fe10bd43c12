"""Load a trained DDPM checkpoint as a frozen teacher (for E2ED² init/pairing and CD).

The teacher is rebuilt through the registry with its EMA weights, frozen (requires_grad
False, eval) and checked against the student's schedule and network config, so that
initialising from it or stepping its ODE is meaningful. Every failure names the file.
"""

from __future__ import annotations

from pathlib import Path

SCHEDULE_KEYS = ("T", "schedule", "zero_snr", "prediction")


def load_teacher(path, schedule_cfg: dict, net_config=None, *, who: str = "method"):
    """Return the teacher Method (frozen, EMA weights) from checkpoint ``path``."""
    from .checkpoint import load_method

    if not path:
        raise ValueError(f"{who}: knob 'teacher' must name a DDPM checkpoint (e.g. results/.../ddpm/final.pt)")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{who}: teacher checkpoint not found: {p} (train the ddpm method first, "
                                f"or set method.teacher to its final.pt)")
    teacher, _ = load_method(p, ema=True)
    for k in SCHEDULE_KEYS:
        if teacher.cfg[k] != schedule_cfg[k]:
            raise ValueError(f"{who}: teacher {p} has {k}={teacher.cfg[k]!r} but this method has {k}={schedule_cfg[k]!r}")
    if net_config is not None and teacher.net.config != net_config:
        raise ValueError(f"{who}: teacher {p} network config {teacher.net.config.to_dict()} differs from this "
                         f"method's {net_config.to_dict()}; init from the teacher needs the same UNet")
    return teacher.requires_grad_(False).eval()
