"""Benchmark candle import: the largest recorded file, then 1,000,000 1m candles, per database.

Usage: .venv/bin/python bench/import_candles.py [--mysql mysql://user:pass@127.0.0.1:3306/name] [--profile]

SQLite runs in a fresh temporary file. MariaDB (from --mysql or DATABASE_URL) runs in a fresh
database named test_bench_import_candles, created and dropped the way the test runner does.
Each backend runs in its own process because Django reads DATABASE_URL once, at settings import.
"""
from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCALED_ROWS = 1_000_000
TARGET_SECONDS = 30.0
BENCH_DATABASE = "test_bench_import_candles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql", default=_mysql_from_env(), help="MariaDB URL (default: DATABASE_URL if mysql)")
    parser.add_argument("--rows", type=int, default=SCALED_ROWS, help="rows of the scaled 1m run")
    parser.add_argument("--profile", action="store_true", help="print where the scaled run spends its time")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: benchmark one database URL
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_backend(args.run, args.rows, args.profile)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        urls = [f"sqlite:///{tmp}/bench.sqlite3"] + ([args.mysql] if args.mysql else [])
        for url in urls:
            command = [sys.executable, __file__, "--run", url, "--rows", str(args.rows)]
            command += ["--profile"] if args.profile else []
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            sys.stderr.write(done.stderr)
            if done.returncode:
                sys.exit(f"benchmark failed for {url.split('@')[-1]}")
            lines = done.stdout.strip().splitlines()
            print("\n".join(lines[:-1]))
            report(json.loads(lines[-1]))


def _mysql_from_env() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("mysql") else None


def report(result: dict) -> None:
    """Print one backend's figures."""
    print(f"\n== {result['backend']} ==")
    largest = result["largest"]
    print(f"largest file {largest['name']}: {largest['rows']} rows, parse {largest['parse_s']:.2f} s, "
          f"import {largest['import_s']:.2f} s = {largest['rows'] / largest['import_s']:,.0f} rows/s; "
          f"second import {largest['reimport_s']:.2f} s, {largest['reimport_new']} new")
    scaled = result["scaled"]
    verdict = "meets" if scaled["import_s"] < TARGET_SECONDS else "MISSES"
    print(f"scaled 1m: {scaled['rows']:,} rows, import {scaled['import_s']:.2f} s = "
          f"{scaled['rows'] / scaled['import_s']:,.0f} rows/s ({verdict} the {TARGET_SECONDS:.0f} s target)")
    print(f"  of which: read+parse+validate {scaled['parse_s']:.2f} s, building row tuples in "
          f"candles_upsert {scaled['row_build_s']:.2f} s, driver + database {scaled['database_s']:.2f} s")


def run_backend(url: str, rows: int, profile: bool) -> dict:
    """Set up Django on `url`, create a fresh schema, run both imports, return figures."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection

    vendor = connection.vendor
    if vendor == "sqlite":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    else:
        # A name of its own: test_<name> may belong to a test run going on at the same time.
        connection.settings_dict["TEST"]["NAME"] = BENCH_DATABASE
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaled-") as tmp:
            return {
                "backend": f"{vendor} {connection.Database.sqlite_version if vendor == 'sqlite' else _mysql_version()}",
                "largest": bench_largest_file(),
                "scaled": bench_scaled(Path(tmp), rows, profile),
            }
    finally:
        if vendor != "sqlite":
            connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


def _mysql_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        return cursor.fetchone()[0]


def _data_lines(path: Path) -> int:
    return gzip.decompress(path.read_bytes()).count(b"\n") - 1


def bench_largest_file() -> dict:
    """Import the candle file with the most rows, then import it again."""
    from django.conf import settings

    from market.csvformat import FileKind, parse_candles, parse_file_name
    from market.importer import market_file_import

    candles = [p for p in Path(settings.MARKET_DATA_DIR).glob("*.csv.gz")
               if parse_file_name(p.name).kind == FileKind.CANDLES]
    path = max(candles, key=_data_lines)
    started = time.perf_counter()
    parse_candles(path.read_bytes(), path.name, parse_file_name(path.name).interval)
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    result = market_file_import(path)
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    again = market_file_import(path)
    return {"name": path.name, "rows": result.rows_new, "parse_s": parse_s, "import_s": import_s,
            "reimport_s": time.perf_counter() - started, "reimport_new": again.rows_new}


def scaled_minutes(rows: int):
    """Return `rows` real 1m candles (decimal strings) re-timed into one gap-free minute series."""
    import numpy as np
    import pandas as pd
    from django.conf import settings

    from market.csvformat import parse_candles, parse_file_name

    frames, total = [], 0
    for path in sorted(Path(settings.MARKET_DATA_DIR).glob("binance_*_1m_*.csv.gz")):
        frame = parse_candles(path.read_bytes(), path.name, "1m").frame
        frames.append(frame)
        total += len(frame)
        if total >= rows:
            break
    while total < rows:  # fewer recorded minutes than asked for: reuse them
        frames += frames
        total *= 2
    frame = pd.concat(frames, ignore_index=True).iloc[:rows].copy()
    start_ms = 1_577_836_800_000  # 2020-01-01 00:00 UTC
    frame["open_time_ms"] = start_ms + np.arange(rows, dtype="int64") * 60_000
    return frame


def write_recorded_csv(frame, path: Path) -> None:
    """Write `frame` in the MARKET_DATA_DIR format (gzip CSV with header)."""
    frame.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 1})


def build_values(frame) -> int:
    """Build the value columns and timestamps the way market/ingest.py does; return the row count."""
    from market.ingest import CANDLE_COLUMNS, _columns, ms_to_db_datetimes

    times = ms_to_db_datetimes(frame["open_time_ms"].to_numpy())
    _columns(frame, [c for c in CANDLE_COLUMNS if c in frame.columns])
    return len(times)


def bench_scaled(tmp: Path, rows: int, profile: bool) -> dict:
    """Import `rows` 1m candles end to end from one gzip CSV into an empty series."""
    from market.csvformat import parse_candles
    from market.importer import market_file_import
    from market.models import Instrument

    path = tmp / "binance_usdm_BTCUSDT_1m_2020-01-01_2021-11-26.csv.gz"
    frame = scaled_minutes(rows)
    write_recorded_csv(frame, path)
    started = time.perf_counter()
    table = parse_candles(path.read_bytes(), path.name, "1m")
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    assert build_values(table.frame) == rows
    row_build_s = time.perf_counter() - started
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = market_file_import(path)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(12)
    import_s = time.perf_counter() - started
    assert result.rows_new == rows, result
    assert Instrument.objects.get(exchange="binanceusdm", exchange_symbol="BTCUSDT").candles.count() == rows
    return {"rows": rows, "import_s": import_s, "parse_s": parse_s, "row_build_s": row_build_s,
            "database_s": import_s - parse_s - row_build_s}


if __name__ == "__main__":
    main()
