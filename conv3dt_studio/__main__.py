"""``python -m conv3dt_studio``: the ``conv3dt-studio`` command line."""

import sys

from conv3dt_studio.app.cli import main

sys.exit(main())
