"""``python -m sim``: the msgsim command."""

import sys

from sim.cli.main import main

sys.exit(main())
