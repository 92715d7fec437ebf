"""Summarise crash-trial results: pass rate, failures per criterion and per point and flow, timings.

Pure apart from `machine()`, which names the host the figures come from.
"""
from __future__ import annotations

import math
import os
import platform
from collections import defaultdict
from statistics import mean

from execution.trials.matrix import FLOWS, POINT_TEXT, POINTS

CRITERIA = ("crashed", "no_duplicate", "protected_10s", "books_equal", "trades_once", "reconciled_30s")


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (0 < fraction <= 1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(mean(values), 3), "p95": round(percentile(values, 0.95), 3),
            "max": round(max(values), 3)}


def machine() -> dict:
    """Return what the figures ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


def summary(results: list[dict]) -> dict:
    """Return the pass rate, failures by criterion and by (point, flow), and the timings of `results`."""
    combos: dict[str, dict] = defaultdict(lambda: {"trials": 0, "passed": 0, "failed": defaultdict(int)})
    for result in results:
        spec = result["spec"]
        combo = combos[f"{spec['point']}/{spec['flow']}"]
        combo["trials"] += 1
        combo["passed"] += result["passed"]
        for criterion, ok in result["verdict"].items():
            combo["failed"][criterion] += not ok
    reconciled = [r for r in results if r.get("reconciled_sim_s") is not None and not r["error"]]
    passed = sum(r["passed"] for r in results)
    return {
        "trials": len(results), "passed": passed,
        "pass_rate": round(passed / len(results), 4) if results else None,
        "failed_by_criterion": {c: sum(not r["verdict"][c] for r in results) for c in CRITERIA},
        "by_point_flow": {key: {"trials": v["trials"], "passed": v["passed"],
                                "failed": {c: n for c, n in v["failed"].items() if n}}
                          for key, v in sorted(combos.items(), key=lambda kv: _combo_rank(kv[0]))},
        "restart_to_reconciled_wall_s": _stats([r["reconciled_wall_s"] for r in reconciled]),
        "restart_to_reconciled_sim_s": _stats([r["reconciled_sim_s"] for r in reconciled]),
        "engine_lease_wait_sim_s": _stats([r["lease_wait_s"] for r in results if r.get("lease_wait_s") is not None]),
        "naked_sim_s": _stats([r["naked_max_s"] for r in results if r.get("naked_max_s") is not None]),
        "trial_wall_s": _stats([r["trial_wall_s"] for r in results if "trial_wall_s" in r]),
        "errors": [f"{r['spec']['index']} {r['spec']['point']}/{r['spec']['flow']}: "
                   f"{r['error'].strip().splitlines()[-1][:200]}" for r in results if r["error"]][:20],
    }


def compact(result: dict) -> dict:
    """Return the part of one trial's result worth keeping in a report."""
    spec = result["spec"]
    kept = {"index": spec["index"], "point": spec["point"], "flow": spec["flow"], "side": spec["side"],
            "crash_at": result.get("crash_at"), "passed": result["passed"],
            "failed": [c for c, ok in result["verdict"].items() if not ok]}
    for key in ("reconciled_sim_s", "reconciled_wall_s", "lease_wait_s", "naked_max_s", "trial_wall_s"):
        value = result.get(key)
        kept[key] = round(value, 3) if isinstance(value, float) else value
    kept["restart_orders"] = result.get("restart_orders")
    if not result["passed"]:
        kept |= {"problems": result.get("problems"), "naked": result.get("naked"), "error": result["error"][-500:]}
    return kept


def _combo_rank(key: str) -> tuple[int, int]:
    point, flow = key.split("/")
    return POINTS.index(point), FLOWS.index(flow)


def summary_lines(report: dict) -> list[str]:
    """Return the summary as Markdown: the headline, then one table row per (point, flow)."""
    lines = [f"{report['passed']}/{report['trials']} trials passed ({100 * (report['pass_rate'] or 0):.1f} %)",
             "failures by criterion: " + ", ".join(f"{c} {n}" for c, n in report["failed_by_criterion"].items()),
             "", "| point | flow | passed | failed criteria |", "|---|---|---|---|"]
    for key, row in report["by_point_flow"].items():
        point, flow = key.split("/")
        failed = ", ".join(f"{c} {n}" for c, n in row["failed"].items()) or "-"
        lines.append(f"| {POINT_TEXT[point]} | {flow} | {row['passed']}/{row['trials']} | {failed} |")
    for name in ("restart_to_reconciled_wall_s", "restart_to_reconciled_sim_s", "engine_lease_wait_sim_s",
                 "naked_sim_s", "trial_wall_s"):
        lines.append(f"{name}: {report[name]}")
    return lines
