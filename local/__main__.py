"""``python -m local ...`` (see :mod:`local.cli`)."""

import sys

from .cli import main

sys.exit(main())
