"""``python -m app``: the ``conv3dt-studio`` command line."""

import sys

from .cli import main

sys.exit(main())
