"""Every training method, E2ED² and its baselines, in one package; one registry builds them.

    base          the Method interface (typed config, losses per phase, sampling), Batch, the
                  Teacher mixin (``init``/``teacher`` knobs), TEACHER_KEYS, the denoising loss
    diffusion     DDPM, EDM (denoising loss) and DDIM (a trained model under the η = 0 sampler)
    consistency   consistency distillation "cd" and training "ct"
    e2ed2         E2ED², the method under test (trained through its own K-step chain)
    registry      name → class (``METHODS``), the typed ``RunConfig``, and the builder that opens
                  teacher and checkpoint files

Adding a method (docs/DESIGN.md "Add a baseline"): a module here, a line in ``registry.METHODS``,
an entry in the workflow config.
"""

from .base import TEACHER_KEYS, Batch, DiffusionConfig, Method, Teacher, TeacherConfig, denoising_loss
from .registry import (
    METHODS,
    RunConfig,
    build_method,
    build_training,
    display_of,
    get_method,
    load_method,
    load_teacher,
    method_config,
    method_names,
    teacher_identity,
    validate_run_config,
)

__all__ = ["METHODS", "TEACHER_KEYS", "Batch", "DiffusionConfig", "Method", "RunConfig", "Teacher", "TeacherConfig",
           "build_method", "build_training", "denoising_loss", "display_of", "get_method", "load_method",
           "load_teacher", "method_config", "method_names", "teacher_identity", "validate_run_config"]
