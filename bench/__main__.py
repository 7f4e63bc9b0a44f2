"""Run every benchmark in turn: `python -m bench`. Each prints a table and one JSON line."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    ["bench.preview", "--repeat", "30"],
    ["bench.preview_store"],
    ["bench.ledger"],
    ["bench.garment_guess", "--repeat", "50"],
    ["bench.fal", "--latency", "0.5", "--requests", "10"],
    ["bench.jobs", "--submits", "1000", "--jobs", "200", "--latency", "1.0", "--workers", "32"],
    ["bench.failover", "--latency", "0.3", "--requests", "12"],
    ["bench.startup", "--runs", "3"],
]


def main() -> int:
    failed = 0
    for module, *args in BENCHMARKS:
        print(f"\n=== python -m {module} {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, "-m", module, *args]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
