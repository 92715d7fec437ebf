"""Backtests over the recorded Binance CSV files of MARKET_DATA_DIR instead of the stored candles.

`csv_symbol_load` returns the same `SymbolData` as `runs.symbol_load`, read from the files named
`binance_<market>_<SYMBOL>_<interval>_<first>_<last>.csv.gz` (market/csvformat.parse_candles): the
timeframes the run reads (the decision timeframe and the configuration's structure timeframes),
each cut to the window `runs.symbol_load` would read from the database (the warm-up before `start`
up to `end`), and the funding rates of the `binance_usdm_<SYMBOL>_funding_*` files (none when no
such file covers the range). A symbol's candles all come from one market: USD-M when its files
cover every timeframe, else spot, unless a market is given.

A file that is missing, that does not cover the range (the history bars before `start` to the last
bar closing at `end`) or that fails validation raises `CsvSourceError` naming the symbol, timeframe,
range or file; nothing is read from or written to the database here.

`csv_backtest_start` is `runs.backtest_start` over these data (`csv_loader`): the run is stored the
same way, its parameters also hold `source: "csv"`, `market` (as asked; "" for USD-M, else spot)
and `source_files` (the files read). Dashboard and API runs (execution.backtest.jobs) take the same
loader when their request names the csv source.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
from django.conf import settings

from execution.backtest import runs
from execution.backtest.engine import ApprovalPolicy
from execution.backtest.world import Candles, FundingRates, InstrumentSpec, SymbolData
from execution.models import BacktestRun
from market.csvformat import FileKind, parse_candles, parse_file_name, parse_funding
from market.models import Instrument
from market.timeframes import timeframe_ms

MARKETS = ("usdm", "spot")      # tried in this order when no market is given
SOURCE = "csv"


class CsvSourceError(ValueError):
    """The files cannot give the run what it needs: the message names the symbol, timeframe, range or file."""


@dataclass
class CsvLoad:
    """What was read for the run: each symbol's data, the files used and notes for the operator."""

    data: list[SymbolData]
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _when(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=timezone.utc):%Y-%m-%d %H:%M}"


def _file_dates(name: str) -> tuple[date, date] | None:
    # binance_<market>_<SYMBOL>_<part>_<first-date>_<last-date>.csv.gz
    parts = name.removesuffix(".csv.gz").split("_")
    try:
        return date.fromisoformat(parts[-2]), date.fromisoformat(parts[-1])
    except (IndexError, ValueError):
        return None


def _recordings(directory: Path, market: str, symbol: str, part: str) -> list[tuple[Path, date, date]]:
    """Return the files of `market`, `symbol` and `part` (an interval or "funding") with their dates, oldest first."""
    out = []
    for path in sorted(directory.glob(f"binance_{market}_{symbol}_{part}_*.csv.gz")):
        spec = parse_file_name(path.name)
        dates = _file_dates(path.name)
        if spec.symbol == symbol and spec.market == market and dates is not None and \
                (spec.interval == part or (part == "funding" and spec.kind == FileKind.FUNDING)):
            out.append((path, *dates))
    return sorted(out, key=lambda item: item[1])


def _overlapping(files, since_ms: int, until_ms: int):
    first, last = (datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date() for ms in (since_ms, until_ms))
    return [(path, a, b) for path, a, b in files if a <= last and b >= first]


def _read(path: Path, parse, *args) -> pd.DataFrame:
    try:
        return parse(path.read_bytes(), path.name, *args).frame
    except OSError as exc:
        raise CsvSourceError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None


def _candles(directory: Path, market: str, symbol: str, timeframe: str, since_ms: int, until_ms: int,
             need_from_ms: int) -> tuple[Candles, list[str]] | str:
    """Return the candles opened in [since, until) and the files read, or why the files do not cover the range.

    The files must hold a bar opened at or before `need_from_ms` and the bar that closes at `until_ms`.
    Validation errors of a file (CsvFormatError, a ValueError) are raised as they are.
    """
    step = timeframe_ms(timeframe)
    wanted = f"{symbol} {timeframe} from {_when(need_from_ms)} to {_when(until_ms - step)} (bar opens)"
    files = _recordings(directory, market, symbol, timeframe)
    if not files:
        return f"no file binance_{market}_{symbol}_{timeframe}_*.csv.gz in {directory} (needed: {wanted})"
    used = _overlapping(files, since_ms, until_ms)
    frames = [(path.name, _read(path, parse_candles, timeframe)) for path, _, _ in used]
    frames = [(name, f[(f["open_time_ms"] >= since_ms) & (f["open_time_ms"] < until_ms)]) for name, f in frames]
    frames = [(name, f) for name, f in frames if len(f)]
    spans = ", ".join(f"{p.name} ({a} to {b})" for p, a, b in files)
    if not frames:
        return f"no {market} file covers {wanted}; files: {spans}"
    frame = pd.concat([f for _, f in frames], ignore_index=True)
    frame = frame.drop_duplicates("open_time_ms", keep="first").sort_values("open_time_ms", ignore_index=True)
    first, last = int(frame["open_time_ms"].iloc[0]), int(frame["open_time_ms"].iloc[-1])
    if first > need_from_ms or last < until_ms - step:
        return (f"the {market} files cover {symbol} {timeframe} only from {_when(first)} to {_when(last)} within "
                f"the range, needed {wanted}; files: {spans}")
    return Candles.from_frame(timeframe, frame), [name for name, _ in frames]


def _funding(directory: Path, symbol: str, since_ms: int, until_ms: int) -> tuple[FundingRates | None, list[str]]:
    files = _overlapping(_recordings(directory, "usdm", symbol, "funding"), since_ms, until_ms)
    ts, rates, marks, names = [], [], [], []
    seen: set[int] = set()
    for path, _, _ in files:
        frame = _read(path, parse_funding)
        frame = frame[(frame["ts_ms"] >= since_ms) & (frame["ts_ms"] <= until_ms) & frame["funding_rate"].notna()]
        for t, rate, mark in zip(frame["ts_ms"], frame["funding_rate"], frame["mark_price"]):
            if int(t) not in seen:
                seen.add(int(t))
                ts.append(int(t))
                rates.append(rate)
                marks.append(mark)
        if len(frame):
            names.append(path.name)
    if not ts:
        return None, []
    order = sorted(range(len(ts)), key=ts.__getitem__)
    return FundingRates.of([ts[i] for i in order], [rates[i] for i in order], [marks[i] for i in order]), names


def needed_timeframes(config, timeframe: str) -> list[str]:
    """Return the decision timeframe and the structure timeframes, finest first."""
    return sorted({timeframe, *config.structure_timeframe_list()}, key=timeframe_ms)


def csv_symbol_load(*, instrument: Instrument, config, start: datetime, end: datetime, directory: Path,
                    market: str | None = None) -> tuple[SymbolData, list[str], str]:
    """Return the instrument's data read from the files, the files read and a note on its funding.

    The candle windows are those `runs.symbol_load` reads from the database; each needed timeframe
    must cover `config.history_bars` bars before `start` to the bar closing at `end`.
    """
    symbol = instrument.exchange_symbol
    timeframes = needed_timeframes(config, config.decision_timeframe)
    problems = []
    for name in ([market] if market else MARKETS):
        candles, files, missing = {}, [], []
        for tf in timeframes:
            step = timedelta(milliseconds=timeframe_ms(tf))
            got = _candles(directory, name, symbol, tf, _ms(start - step * runs.lookback_bars(tf, config)),
                           _ms(end), _ms(start - step * config.history_bars))
            if isinstance(got, str):
                missing.append(got)
            else:
                candles[tf], used = got
                files += used
        if not missing:
            break
        problems += missing
    else:
        raise CsvSourceError("; ".join(problems))
    since, until = _ms(start - runs.FUNDING_MARGIN), _ms(end + runs.FUNDING_MARGIN)
    funding, funding_files = _funding(directory, symbol, since, until)
    if funding is None:
        note = (f"{symbol}: no funding file (binance_usdm_{symbol}_funding_*.csv.gz) covers {_when(since)} to "
                f"{_when(until)}: no funding is charged")
    else:
        note = f"{symbol}: {len(funding.ts_ms)} funding rates from {', '.join(funding_files)}"
    return SymbolData(InstrumentSpec.of(instrument), candles, funding), files + funding_files, note


def csv_symbols_load(*, instruments: Sequence[Instrument], config, start: datetime, end: datetime,
                     directory: Path | None = None, market: str | None = None) -> CsvLoad:
    """Return every instrument's data from the files; `config.decision_timeframe` is the run's timeframe."""
    directory = Path(directory if directory is not None else settings.MARKET_DATA_DIR)
    if not directory.is_dir():
        raise CsvSourceError(f"market data directory {directory} does not exist")
    if market is not None and market not in MARKETS:
        raise CsvSourceError(f"unknown market {market!r}; use {' or '.join(MARKETS)}")
    load = CsvLoad([])
    for instrument in instruments:
        data, files, note = csv_symbol_load(instrument=instrument, config=config, start=start, end=end,
                                            directory=directory, market=market)
        load.data.append(data)
        load.files += files
        load.notes.append(note)
    return load


def csv_loader(*, directory: Path | None = None, market: str | None = None,
               notes: Callable[[str], None] | None = None) -> runs.Loader:
    """Return a `runs.backtest_start` loader reading the files; the run's parameters get the source, market and files.

    `notes(text)` is called with what was read for each symbol (its funding) before the run starts.
    """
    def loader(listed, run_config, since, until) -> tuple[list[SymbolData], dict]:
        load = csv_symbols_load(instruments=listed, config=run_config, start=since, end=until, directory=directory,
                                market=market)
        for note in load.notes if notes is not None else ():
            notes(note)
        return load.data, {"source": SOURCE, "market": market or "", "source_files": load.files}

    return loader


def csv_backtest_start(*, timeframe: str, start: datetime, end: datetime, starting_equity: Decimal,
                       instruments: Sequence[Instrument], directory: Path | None = None, market: str | None = None,
                       progress: Callable[[int, int], None] | None = None, config=None,
                       approvals: ApprovalPolicy | None = None, workers: int = 1,
                       notes: Callable[[str], None] | None = None) -> BacktestRun:
    """`runs.backtest_start` over the CSV files: same checks, same stored run, plus the source in the parameters.

    Raises ValueError (CsvSourceError for the files) before anything is written. `notes(text)` is
    called with what was read for each symbol (its funding) before the run starts.
    """
    return runs.backtest_start(timeframe=timeframe, start=start, end=end, starting_equity=starting_equity,
                               instruments=list(instruments), progress=progress, config=config,
                               approvals=approvals, workers=workers,
                               loader=csv_loader(directory=directory, market=market, notes=notes))
