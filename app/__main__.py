"""``python -m conv3dt_studio.app`` (as ``python -m conv3dt_studio``): the ``conv3dt-studio`` command
line."""

import sys

from .cli import main

sys.exit(main())
