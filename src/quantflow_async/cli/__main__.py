"""`python -m quantflow_async.cli`: the same as the `quantflow` command."""

import sys

from quantflow_async.cli.app import main

sys.exit(main())
