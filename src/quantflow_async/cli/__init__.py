"""The `quantflow` command: a thin shell over the library, one verb per job.

`app.py` builds the parser and turns every user mistake into one line; each command module
(`store_commands.py`, ...) registers its verbs there.
"""

from quantflow_async.cli.app import main

__all__ = ["main"]
