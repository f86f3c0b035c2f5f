"""``python -m conv3dt_studio.app.cli``: the ``conv3dt-studio`` command line."""

import sys

from . import main

sys.exit(main())
