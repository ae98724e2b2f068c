"""``python -m netrun_ws`` is the ``netrun-ws`` command."""

import sys

from netrun_ws.cli import main

sys.exit(main())
