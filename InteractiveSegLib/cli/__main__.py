"""``python -m InteractiveSegLib.cli``: the ``interactiveseg`` console script."""

import sys

from InteractiveSegLib.cli.main import main

sys.exit(main())
