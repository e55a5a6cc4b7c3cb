"""``python -m atelier``: the command-line interface (see ``atelier --help``)."""

import sys

from .nodes.cli import main

sys.exit(main())
