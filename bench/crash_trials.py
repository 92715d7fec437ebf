"""Run the full crash-trial matrix and record it in bench/crash_trials.json (the README's "Crash trials").

Usage: .venv/bin/python bench/crash_trials.py [--trials 600] [--seed 1] [--workers 1]
           [--report bench/crash_trials.json]

The same run as `manage.py crash_trials --trials 600 --seed 1 --report bench/crash_trials.json`:
8 crash points x 3 flows (market entry, limit entry, exit) x long/short, 25 trials of each
(point, flow), each with its own seeded price, size, stop distance, limit offset and partial fill.
Per trial: the venue emulator, the execution process killed with SIGKILL at its crash point, the
restarted engine (startup reconciliation, then the execution loop ticking 2 s at a time on a
simulated clock) and the comparison of the database with the venue (execution/trials/). Times:
simulated seconds from the restart to the books equal to the venue (the figure the 30 s target
is about: the engine's clock), and the wall time the restarted process took to get there, from
its fork (the interpreter's start-up, Django and ccxt imports, is not in it: see the README).
One worker by default, so the wall times are not inflated by trials running side by side.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--per-process-holder", action="store_true",
                        help="engine lease holder per process, as run_execution takes it (default: a fixed name)")
    parser.add_argument("--report", default=str(REPO / "bench" / "crash_trials.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from execution.trials.director import matrix_run
    from execution.trials.report import summary_lines

    def progress(result: dict) -> None:
        print("." if result["passed"] else "F", end="", flush=True)

    report = matrix_run(trials=args.trials, seed=args.seed, workers=args.workers,
                        per_process_holder=args.per_process_holder, on_result=progress)
    report["command"] = (f"bench/crash_trials.py --trials {args.trials} --seed {args.seed} --workers {args.workers}"
                         + (" --per-process-holder" if args.per_process_holder else ""))
    print()
    print("\n".join(summary_lines(report["summary"])))
    Path(args.report).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
