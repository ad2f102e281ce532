"""`python -m sdperf ...`: the `sdperf` command, where its script is not on PATH."""

import sys

from sdperf.cli.main import main

sys.exit(main())
