"""`python -m bertbench`: the same CLI as the `bertbench` script (bertbench.cli)."""

import sys

from bertbench.cli import main

sys.exit(main())
