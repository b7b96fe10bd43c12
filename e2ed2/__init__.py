"""E2ED² reproduction harness: core diffusion library.

Modules (data flows top to bottom): ``data`` → ``text`` → ``nets`` → ``schedules`` →
``denoiser`` → ``samplers`` → ``method`` (+ ``baselines``/``e2e``) → ``train`` → ``sample``.
"""

__version__ = "0.1.0"
