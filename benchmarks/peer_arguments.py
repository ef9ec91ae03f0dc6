"""The command line every peer's sweep script takes (peer_optimize.py, peer_vectorbt.py): the
bars CSVs, the grid's fast and slow windows, the cash and the commission. Standard library
only, since a peer may run in an interpreter of its own."""

from __future__ import annotations

import argparse


def grid_arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", nargs="+")
    parser.add_argument("--fast", type=int, nargs="+", required=True)
    parser.add_argument("--slow", type=int, nargs="+", required=True)
    parser.add_argument("--cash", type=float, default=10_000.0)
    parser.add_argument("--commission", type=float, default=0.0)
    return parser.parse_args()
