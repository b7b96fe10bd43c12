import sys

from .. import cli as shared_cli
from .cli import main

sys.exit(shared_cli.run(main))
