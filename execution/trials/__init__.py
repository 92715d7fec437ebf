"""Crash trials: kill the execution process at a crash point, restart it, and check the books against the venue.

One trial runs four processes: the venue (the Binance USD-M emulator, venue.py), the execution
process, which runs a scenario through the engine's own functions until its crash point
(execution/crashpoints.py) kills it with SIGKILL (flows.py), then the restarted engine, which
reconciles, ticks the execution loop on a simulated clock and compares the database with the
venue (restart.py, checks.py). A worker process (worker.py) with Django and ccxt loaded forks
them, so a trial costs no interpreter start-up; the director (director.py) feeds workers the
trials of the matrix (matrix.py) and summarises them (report.py).

Entry points: `manage.py crash_trials`, `bench/crash_trials.py`, tests/reliability/.
"""
