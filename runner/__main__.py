"""``python -m runner`` is the ``audioml`` command."""

import sys

from runner.cli import main

sys.exit(main())
