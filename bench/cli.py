"""Start-up time of the command line, as a new user feels it.

Times ``fedisocial --help``, ``fedisocial post --help`` and ``fedisocial user
list`` (on a scratch SQLite instance made by ``fedisocial init``), each run in
a fresh process, and prints the median and the slowest run of each beside the
bare bound measured in the same run: a Python process that only starts and
exits. Target: ``--help`` well under 0.5 s (it imports no database, HTTP or
image library).

Run::

    .venv/bin/python bench/cli.py [--runs 10]

Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEDISOCIAL = [sys.executable, "-m", "fedisocial"]


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def _report(label: str, times: list[float]) -> None:
    print(f"{label:<25} median {statistics.median(times):.3f} s  max {max(times):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("FEDISOCIAL_")}  # fmt: skip
        subprocess.run([*FEDISOCIAL, "init"], env=env, cwd=root, check=True, capture_output=True)
        print(f"python {sys.version.split()[0]}, {runs} runs each, a fresh process per run")
        bare = [_time([sys.executable, "-c", "pass"], env, root) for _ in range(runs)]
        _report("bare python (bound)", bare)
        for command in (["--help"], ["post", "--help"], ["user", "list"]):
            times = [_time([*FEDISOCIAL, *command], env, root) for _ in range(runs)]
            _report(f"fedisocial {' '.join(command)}", times)


if __name__ == "__main__":
    main()
