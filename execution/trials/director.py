"""Run crash trials on worker processes and collect their results; needs no Django in this process.

Each worker (`python -m execution.trials.worker`) gets a directory of its own under a temporary
one: its SQLite database (DATABASE_URL), the template it copies before each trial, the venue's
state file, and its log (worker.log, stderr of the worker and of every trial process).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from execution.emulator.venue import DEFAULT_API_KEY, DEFAULT_API_SECRET
from execution.trials.matrix import FLOWS, POINTS, TrialSpec, trial_specs
from execution.trials.report import compact, machine, summary
from execution.trials.worker import PORT_ENV, WORKDIR_ENV

BASE_DIR = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TrialWorker:
    """One worker process: send it a trial, read back the result."""

    def __init__(self, workdir: Path, *, python: str = sys.executable):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, port = workdir, _free_port()
        env = {**os.environ,
               "DJANGO_SETTINGS_MODULE": "tradingbot.settings",
               "SECRET_KEY": os.environ.get("SECRET_KEY") or "crash-trials-only-not-a-secret",
               "ENV_FILE": str(workdir / "no.env"),        # the project's .env must not move the database
               "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
               "EXCHANGE_API_URL": f"http://127.0.0.1:{port}",
               "EXCHANGE_API_KEY": DEFAULT_API_KEY, "EXCHANGE_API_SECRET": DEFAULT_API_SECRET,
               "FIELD_ENCRYPTION_KEY": "", "REDIS_URL": "", "LOG_LEVEL": "WARNING",
               WORKDIR_ENV: str(workdir), PORT_ENV: str(port)}
        self.log = open(workdir / "worker.log", "ab")
        self.process = subprocess.Popen([python, "-m", "execution.trials.worker"], cwd=BASE_DIR, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        bufsize=1)
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"crash-trial worker did not start: {ready}; see {workdir / 'worker.log'}")

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            log = (self.workdir / "worker.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"crash-trial worker exited ({self.process.returncode}):\n{log}")
        return json.loads(line)

    def run(self, spec: TrialSpec) -> dict:
        """Run one trial on this worker and return its result (see trial_verdict for the pass criteria)."""
        self.process.stdin.write(json.dumps(spec.as_dict()) + "\n")
        self.process.stdin.flush()
        return trial_verdict(self._read())

    def close(self) -> None:
        """Stop the worker (end of input) and wait for it."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


PROTECTED_WITHIN_S = 10.0
RECONCILED_WITHIN_S = 30.0


def trial_verdict(result: dict) -> dict:
    """Add the pass or fail of each criterion (and `passed`) to a worker's trial result."""
    problems = result.get("problems") or {}
    error = result.get("error") or result.get("flow_error") or ""
    if not error and result.get("exit_code") != -9:
        error = f"the crash point {result.get('crash_at')} was not reached (exit code {result.get('exit_code')})"
    reconciled_s = result.get("reconciled_sim_s")
    verdict = {
        "crashed": result.get("exit_code") == -9,
        "no_duplicate": not error and not problems.get("duplicate"),
        "protected_10s": not error and not problems.get("protection")
        and (result.get("naked_max_s") or 0) <= PROTECTED_WITHIN_S,
        "books_equal": not error and not (problems.get("orders") or problems.get("positions")),
        "trades_once": not error and not problems.get("fills"),
        "reconciled_30s": not error and not problems and reconciled_s is not None
        and reconciled_s < RECONCILED_WITHIN_S,
    }
    return result | {"error": error, "verdict": verdict, "passed": all(verdict.values())}


def trials_run(specs: Iterable[TrialSpec], *, workers: int = 1, root: Path | None = None,
               on_result: Callable[[dict], None] | None = None, keep: bool = False) -> list[dict]:
    """Run `specs` on `workers` worker processes; return the results in spec order."""
    specs = list(specs)
    root = root or Path(tempfile.mkdtemp(prefix="crash-trials-"))
    todo: queue.Queue = queue.Queue()
    for spec in specs:
        todo.put(spec)
    results: dict[int, dict] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        worker = TrialWorker(root / f"w{n}")
        try:
            while True:
                try:
                    spec = todo.get_nowait()
                except queue.Empty:
                    return
                result = worker.run(spec)
                with lock:
                    results[spec.index] = result
                    if on_result is not None:
                        on_result(result)
        finally:
            worker.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(max(1, min(workers, len(specs))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = [s.name for s in specs if s.index not in results]
    if missing:
        raise RuntimeError(f"trials without a result (a worker failed; see {root}): {missing[:5]}")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return [results[s.index] for s in specs]


def code_version() -> dict:
    """Return the commit the trials run and the files changed since (the engine is read from this tree)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=30)
        return done.stdout.rstrip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed": [line[3:] for line in changed]}


def matrix_run(*, trials: int, seed: int, points=POINTS, flows=FLOWS, workers: int = 1, keep: bool = False,
               per_process_holder: bool = False, on_result: Callable[[dict], None] | None = None) -> dict:
    """Run `trials` trials of the matrix and return the report: how it ran, the summary and each trial."""
    started_at, started, code = datetime.now(UTC), time.perf_counter(), code_version()
    specs = trial_specs(trials, seed, points, flows, per_process_holder=per_process_holder)
    results = trials_run(specs, workers=workers, keep=keep, on_result=on_result)
    holder = " --per-process-holder" if per_process_holder else ""
    return {"command": f"manage.py crash_trials --trials {trials} --seed {seed} --points {','.join(points)} "
                       f"--flows {','.join(flows)} --workers {workers}{holder}",
            "date": started_at.isoformat(timespec="seconds"), "machine": machine(), "code": code,
            "duration_s": round(time.perf_counter() - started, 1), "summary": summary(results),
            "results": [compact(r) for r in results]}
