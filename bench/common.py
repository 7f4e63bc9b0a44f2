"""Shared helpers for the benchmarks: percentiles, the machine's description, output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic pictures the tests draw


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(name: str, rows: dict[str, dict[str, float]], unit: str = "ms") -> None:
    """Print a table of p50/p95/p99 per row, then one JSON line with everything."""
    print(f"\n{name}  ({machine()})")
    print(f"{'case':44} {'n':>5} {'p50':>9} {'p95':>9} {'p99':>9}   [{unit}]")
    for case, stats in rows.items():
        print(f"{case:44} {stats['n']:>5} {stats['p50']:>9.2f} {stats['p95']:>9.2f} {stats['p99']:>9.2f}")
    print(json.dumps({"benchmark": name, "machine": machine(), "unit": unit, "results": rows}))
