"""Benchmark: where the README's sweep spends its CPU, by process, and how much of two cores
its 2-worker run leaves idle.

    python benchmarks/sweep_cpu.py [--bars 30000] [--rounds 5]

Runs `quantflow sweep sma_cross` over the demo's six files and grid (as sweep_run.py does)
with 1 worker and with 2, alternating who goes first, and samples the CPU time of every
process of the run every 20 ms: the main process (the command: reading the files, storing
the jobs, handing them out, relaying fills, recording outcomes), the SQLite writer process
(every insert), the fork server and the workers. A process's last 20 ms or less before it
exits may be missed.

A run on 2 cores takes at least half the CPU it uses, so 1 worker / 2 workers is at most
(the 1-worker wall) / (the 2-worker CPU / 2): the table prints that bound beside the
measured ratio, and the core-seconds the 2-worker run leaves idle (2 x wall - CPU), which
is what stands between the two. Prints a table and writes benchmarks/results/sweep-cpu.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
from _common import bytecode_cached, load_average, print_table, shown, spread, write_json
from sweep_run import markets_and_template, ours

ROLES = ("main", "sqlite writer", "fork server", "workers", "other")


def role_of(process: psutil.Process, main: int, fork_server: set[int]) -> str:
    """Which part of a sweep `process` is, from its command line and its parent."""
    if process.pid == main:
        return "main"
    command = " ".join(process.cmdline())
    if "sqlite_worker_main" in command:
        return "sqlite writer"
    if process.ppid() in fork_server:
        return "workers"  # forked from the server: the server's command line, its own pid
    if "forkserver" in command:
        fork_server.add(process.pid)
        return "fork server"
    return "other"  # multiprocessing's resource tracker


def cpu_by_role(command: list[str]) -> tuple[float, dict[str, float]]:
    """Wall seconds of `command` and the CPU seconds of its processes, by role."""
    started = time.perf_counter()
    run = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last: dict[int, tuple[str, float]] = {}
    fork_server: set[int] = set()
    while run.poll() is None:
        try:
            processes = [run, *run.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for process in processes:
            try:
                role = last[process.pid][0] if process.pid in last else None
                role = role or role_of(process, run.pid, fork_server)
                times = process.cpu_times()
            except psutil.Error:
                continue  # it ended between the listing and the reading
            last[process.pid] = (role, times.user + times.system)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{run.stderr.read().decode()}")
    by_role: dict[str, float] = defaultdict(float)
    for role, cpu in last.values():
        by_role[role] += cpu
    return seconds, {role: by_role[role] for role in ROLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    walls: dict[int, list[float]] = {1: [], 2: []}
    cpus: dict[int, dict[str, list[float]]] = {1: defaultdict(list), 2: defaultdict(list)}
    with bytecode_cached(), tempfile.TemporaryDirectory(prefix="sweep-cpu-") as name:
        folder = Path(name)
        files, template = markets_and_template(folder, args.bars)
        cpu_by_role(ours(folder, template, files, 1, 0))  # warm: file cache, bytecode
        load_at_start = load_average()
        for n in range(1, args.rounds + 1):
            for workers in (1, 2) if n % 2 else (2, 1):
                seconds, by_role = cpu_by_role(ours(folder, template, files, workers, n))
                walls[workers].append(seconds)
                for role, cpu in by_role.items():
                    cpus[workers][role].append(cpu)
                print(f"  round {n}: {workers} worker(s) {seconds:.2f} s", file=sys.stderr)
        load_at_end = load_average()
    cpu = {n: [sum(cpus[n][role][k] for role in ROLES) for k in range(args.rounds)] for n in (1, 2)}
    idle = [2 * wall - used for wall, used in zip(walls[2], cpu[2], strict=True)]
    ratios = [one / two for one, two in zip(walls[1], walls[2], strict=True)]
    bounds = [one / (used / 2) for one, used in zip(walls[1], cpu[2], strict=True)]
    rows = [[role, shown(spread(cpus[1][role])), shown(spread(cpus[2][role]))] for role in ROLES]
    rows += [
        ["CPU in all", shown(spread(cpu[1])), shown(spread(cpu[2]))],
        ["wall", shown(spread(walls[1])), shown(spread(walls[2]))],
        ["idle core-seconds (2 x wall - CPU)", "", shown(spread(idle))],
        ["1 worker / 2 workers, measured", shown(spread(ratios)) + "x", ""],
        ["1 worker / 2 workers, bound: wall 1 / (CPU 2 / 2)", shown(spread(bounds)) + "x", ""],
    ]
    print_table(
        f"The README's sweep (6 x {args.bars:,} bars, 96 backtests), CPU seconds by process; "
        f"median (min..max) of {args.rounds} rounds (load {load_at_start:.2f} -> "
        f"{load_at_end:.2f})",
        ["process", "1 worker", "2 workers"],
        rows,
    )
    write_json(
        "sweep-cpu",
        {
            "bars": args.bars,
            "rounds": args.rounds,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "cpu_seconds": {
                f"{workers}_worker{'s' if workers > 1 else ''}": {
                    role: spread(values) for role, values in by_role.items()
                }
                for workers, by_role in cpus.items()
            },
            "wall_seconds": {"1_worker": spread(walls[1]), "2_workers": spread(walls[2])},
            "cpu_seconds_in_all": {"1_worker": spread(cpu[1]), "2_workers": spread(cpu[2])},
            "idle_core_seconds_2_workers": spread(idle),
            "ratios": {"1_worker_over_2": spread(ratios), "bound": spread(bounds)},
        },
    )


if __name__ == "__main__":
    main()
