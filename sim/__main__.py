"""``python -m sim``: the msgsim command."""

import sys

from sim.cli import main

sys.exit(main())
