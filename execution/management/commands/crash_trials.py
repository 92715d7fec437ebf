"""Run the crash-trial matrix: `manage.py crash_trials --trials 600 --seed 1 --report bench/crash_trials.json`."""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from execution.trials.director import matrix_run
from execution.trials.matrix import FLOWS, POINTS
from execution.trials.report import summary_lines


def _choices(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise CommandError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return chosen


class Command(BaseCommand):
    help = ("Kill the execution process (SIGKILL) at each crash point of each flow, restart it, reconcile and check "
            "the books against the venue emulator: no duplicate order, every position protected within 10 s, "
            "orders, fills and positions equal, every trade booked once, reconciled within 30 s.")

    def add_arguments(self, parser):
        parser.add_argument("--trials", type=int, default=600)
        parser.add_argument("--seed", type=int, default=1, help="draws each trial's prices and sizes")
        parser.add_argument("--points", default=",".join(POINTS), help=f"comma-separated: {', '.join(POINTS)}")
        parser.add_argument("--flows", "--entries", dest="flows", default=",".join(FLOWS),
                            help="comma-separated: market, limit (entries) and exit")
        parser.add_argument("--workers", type=int, default=1, help="trial worker processes in parallel")
        parser.add_argument("--report", default="", help="write the summary and every trial to this JSON file")
        parser.add_argument("--keep", action="store_true", help="keep the trial databases and worker logs")
        parser.add_argument("--per-process-holder", action="store_true",
                            help="take the engine lease as run_execution does (a holder name per process) instead "
                                 "of a fixed name: the restart then waits for the dead engine's lease to lapse")

    def handle(self, *args, **opts):
        report = matrix_run(trials=opts["trials"], seed=opts["seed"], workers=opts["workers"], keep=opts["keep"],
                            points=_choices(opts["points"], POINTS, "crash point"),
                            flows=_choices(opts["flows"], FLOWS, "flow"),
                            per_process_holder=opts["per_process_holder"], on_result=self._progress)
        self.stdout.write("\n".join(summary_lines(report["summary"])))
        if opts["report"]:
            path = Path(opts["report"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1, default=str) + "\n")
            self.stdout.write(f"report: {path}")

    def _progress(self, result: dict) -> None:
        if result["passed"]:
            return
        spec = result["spec"]
        failed = ", ".join(c for c, ok in result["verdict"].items() if not ok)
        self.stdout.write(f"FAIL {spec['index']} {spec['point']}/{spec['flow']}/{spec['side']}: {failed} "
                          f"(reconciled {result.get('reconciled_sim_s')} s, naked {result.get('naked_max_s')} s)")
