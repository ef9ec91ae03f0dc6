"""Benchmark: how long a fresh process takes to import the package and to print `--help`.

    python benchmarks/startup.py [--runs 15]

Each command runs `--runs` times, the commands taking turns so that a change in the machine's
load falls on all of them alike; a figure is the median wall time of a whole process, with its
range, and its ratio to a bare `python -c pass`. Bytecode is cached, as in any installed
package: the children may write it (even under PYTHONDONTWRITEBYTECODE), into a temporary
folder rather than the source tree. Prints a table and writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import bytecode_env, load_average, print_table, shown, spread, write_json

PYTHON = sys.executable
# The installed console script when there is one (it is what a user runs), else the module.
_SCRIPT = Path(PYTHON).with_name("quantflow")
QUANTFLOW = [str(_SCRIPT)] if _SCRIPT.is_file() else [PYTHON, "-m", "quantflow_async.cli"]

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [PYTHON, "-c", "pass"],
    "python -c 'import quantflow_async'": [PYTHON, "-c", "import quantflow_async"],
    "quantflow --help": [*QUANTFLOW, "--help"],
    "quantflow backtest run --help": [*QUANTFLOW, "backtest", "run", "--help"],
    "quantflow sweep run --help": [*QUANTFLOW, "sweep", "run", "--help"],
}
BARE = "python -c pass"


def wall_time(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (15)")
    args = parser.parse_args()
    if args.runs < 10:
        parser.error("--runs must be at least 10, for a median worth the name")

    with tempfile.TemporaryDirectory(prefix="startup-pycache-") as cache:
        env = bytecode_env(cache)
        for command in COMMANDS.values():  # warm the file cache and write the bytecode
            wall_time(command, env)
        load_at_start = load_average()
        seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(args.runs):
            for name, command in COMMANDS.items():
                seconds[name].append(wall_time(command, env))
        load_at_end = load_average()

    milliseconds = {name: spread([s * 1000 for s in runs]) for name, runs in seconds.items()}
    bare = milliseconds[BARE]["median"]
    ratios = {name: figure["median"] / bare for name, figure in milliseconds.items()}
    print_table(
        f"start-up, median of {args.runs} runs (load {load_at_start:.2f} -> {load_at_end:.2f})",
        ["command", "ms, median (min..max)", "x bare python"],
        [[name, shown(milliseconds[name], "{:.1f}"), f"{ratios[name]:.2f}"] for name in COMMANDS],
    )
    write_json(
        "startup",
        {
            "runs": args.runs,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "quantflow": " ".join(Path(part).name for part in QUANTFLOW),
            "commands": {
                name: {
                    "milliseconds": milliseconds[name],
                    "ratio_to_bare_python": ratios[name],
                }
                for name in COMMANDS
            },
        },
    )


if __name__ == "__main__":
    main()
