"""Start-up time of `mridiff --help` and `mridiff info`, as a ratio to `python -c "import torch"`.

Lazy imports keep the command line light: parsing arguments and checking the bundled models' checksums import
neither torch nor Lightning. Each command runs REPEATS times in a fresh interpreter; the median is reported.

    OMP_NUM_THREADS=1 python benchmarks/startup.py      # writes benchmarks/results/startup.md
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from mridiff.io.atomic import atomic_write_text

REPEATS = 5
COMMANDS: dict[str, list[str]] = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "mridiff --help": [sys.executable, "-m", "mridiff.cli", "--help"],
    "mridiff info": [sys.executable, "-m", "mridiff.cli", "info"],
}
OUT = Path(__file__).parent / "results" / "startup.md"


def median_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    results = {name: median_seconds(argv) for name, argv in COMMANDS.items()}
    torch_s = results['python -c "import torch"']
    cpus = len(os.sched_getaffinity(0))
    lines = [f"# Start-up time ({date.today().isoformat()}, {platform.machine()}, {cpus} CPU(s) usable, "
             f"median of {REPEATS})", "", "| command | seconds | ratio to `import torch` |", "|---|---|---|"]
    lines += [f"| `{name}` | {sec:.2f} | {sec / torch_s:.2f} |" for name, sec in results.items()]
    lines += ["", "Target (issue 13): `mridiff --help` and `mridiff info` under 2 s, i.e. well below one torch import; "
              "tests/commands/test_common.py keeps torch, MONAI, sigpy and Lightning out of both."]
    atomic_write_text(OUT, "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
