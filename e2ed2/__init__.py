"""E2ED² reproduction harness: core diffusion library.

Modules (data flows top to bottom): ``data`` → ``text`` → ``nets`` → ``schedules`` →
``denoiser`` → ``samplers`` → ``methods`` (E2ED² and its baselines, one registry) → ``train`` → ``sample``.
"""

__version__ = "0.1.0"
