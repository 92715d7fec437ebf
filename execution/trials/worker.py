"""A crash-trial worker: one process with Django and ccxt loaded that forks the processes of each trial.

Started by the director with its settings in the environment: DATABASE_URL (the trial database, a
fixed path the worker overwrites from its template before each trial), EXCHANGE_API_URL (the fixed
port every trial's venue binds), the emulator's API key and secret, TRIALS_WORKDIR and TRIALS_PORT.
Protocol: one JSON line {"ready": true} once set up, then for each trial spec read as a JSON line on
stdin, one JSON result line on stdout. Nothing else may write to that stdout: fd 1 is pointed at
stderr, and the results go to a copy of the original.

    python -m execution.trials.worker
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

FLOW_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 180.0
WORKDIR_ENV, PORT_ENV = "TRIALS_WORKDIR", "TRIALS_PORT"


def template_make(db_path: Path, template: Path) -> None:
    """Migrate the trial database once, add the testnet account and instrument, and keep a copy as the template."""
    from django.core.management import call_command
    from django.db import connection, connections

    from decisions.selectors import trading_config_get
    from execution.models import Account
    from execution.trials.flows import ACCOUNT_NAME
    from execution.trials.venue import SYMBOL
    from market.services import instrument_ensure

    call_command("migrate", verbosity=0, interactive=False)
    account = Account.objects.create(name=ACCOUNT_NAME, broker=Account.Broker.TESTNET,
                                     starting_balance_usdt=10_000, balance_usdt=10_000)
    instrument_ensure(exchange=account.exchange_id, exchange_symbol=SYMBOL, market_type="swap")
    trading_config_get()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connections.close_all()   # nothing open may be inherited by the forked trial processes
    shutil.copyfile(db_path, template)


def _reset(db_path: Path, template: Path, state_file: Path) -> None:
    for path in (db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm"), state_file):
        path.unlink(missing_ok=True)
    shutil.copyfile(template, db_path)


def trial_run(spec, *, workdir: Path, port: int) -> dict:
    """Run one trial: venue, execution process until its crash, restart and check; return the result."""
    from execution.trials.flows import flow_main
    from execution.trials.venue import FORK, VenueProcess

    db_path, template, state_file = workdir / "db.sqlite3", workdir / "template.sqlite3", workdir / "venue.json"
    error_file = workdir / "flow-error.txt"
    _reset(db_path, template, state_file)
    error_file.unlink(missing_ok=True)
    result = {"spec": spec.as_dict(), "crash_at": spec.crash_at}
    started = time.perf_counter()
    venue = VenueProcess(port=port, state_file=state_file, price=spec.price).start()
    try:
        flow = FORK.Process(target=flow_main, args=(spec, venue.control, error_file), name="trial-execution")
        flow.start()
        flow.join(FLOW_TIMEOUT_S)
        if flow.is_alive():
            flow.kill()
            flow.join()
        result["exit_code"] = flow.exitcode
        result["flow_error"] = error_file.read_text()[-4000:] if error_file.exists() else ""
        result["flow_wall_s"] = time.perf_counter() - started
        if spec.flow == "limit" and spec.point == "mid_partial_fill" and spec.rest_fills_while_down:
            venue.control.set_price(spec.limit_price())   # the rest of the entry fills while the engine is down
        result |= _restart(spec, venue)
    finally:
        venue.stop()
    result["trial_wall_s"] = time.perf_counter() - started
    return result


def _restart(spec, venue) -> dict:
    from execution.trials.restart import restart_main
    from execution.trials.venue import FORK

    receiver, sender = FORK.Pipe(duplex=False)
    process = FORK.Process(target=restart_main, args=(spec, venue.control, sender), name="trial-restart")
    process.start()
    sender.close()
    if not receiver.poll(RESTART_TIMEOUT_S):
        process.kill()
        process.join()
        return {"error": f"the restarted engine did not finish in {RESTART_TIMEOUT_S:.0f} s"}
    result = receiver.recv()
    process.join()
    return result


def main() -> None:
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)   # stray prints of Django, ccxt or a child must not corrupt the protocol
    import django

    django.setup()
    # Load what the trial processes use before forking them, so each fork starts warm.
    import ccxt  # noqa: F401

    from execution.trials import flows, restart  # noqa: F401
    from execution.trials.matrix import TrialSpec

    workdir, port = Path(os.environ[WORKDIR_ENV]), int(os.environ[PORT_ENV])
    template_make(workdir / "db.sqlite3", workdir / "template.sqlite3")
    results.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        spec = TrialSpec(**json.loads(line))
        results.write(json.dumps(trial_run(spec, workdir=workdir, port=port), default=str) + "\n")


if __name__ == "__main__":
    main()
