"""`python -m sdperf.cli`: the `sdperf` command without its script."""

import sys

from sdperf.cli.main import main

sys.exit(main())
