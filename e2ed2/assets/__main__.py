"""``python -m e2ed2.assets``: see e2ed2.assets.command."""

import sys

from .. import cli
from .command import main

sys.exit(cli.run(main))
