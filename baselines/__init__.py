"""Deprecated alias: the baseline methods moved into ``e2ed2.methods`` (one methods package with
E2ED²). ``baselines.ddpm``/``baselines.ddim`` → ``e2ed2.methods.diffusion``, ``baselines.consistency``
→ ``e2ed2.methods.consistency``. Importing from here still works and warns; it goes in 0.3."""

import sys
import warnings

from e2ed2.methods import consistency, diffusion

warnings.warn("the 'baselines' package moved into e2ed2.methods (diffusion: DDPM, EDM, DDIM; consistency: CD, CT); "
              "import from there — this alias will be removed", DeprecationWarning, stacklevel=2)
for _old, _new in (("ddpm", diffusion), ("ddim", diffusion), ("consistency", consistency)):
    sys.modules[f"{__name__}.{_old}"] = _new
