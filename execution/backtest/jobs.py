"""Backtests as jobs: a request is checked, stored QUEUED and run by a django-q2 worker with live progress.

`backtest_submit` checks everything before anything is written (known symbols, the timeframe, an
aware range on the bar grid whose bars and warm-up its source holds: the stored candles, or the
recorded CSV files read as `manage.py backtest --source csv` reads them; a positive equity;
parameters that are admin-editable trading-configuration fields, each validated by its model field
and the configuration's own `clean()`), stores a QUEUED `BacktestRun` holding the whole configuration it
will use, and queues `execution.tasks_backtest.backtest_execute` once that commits. The worker
claims the row (QUEUED -> RUNNING, once), runs the live pipeline into it, writes `bars_done` at most
every 1 % with a "backtest" live event each time, and ends DONE or FAILED with the error.

Walk-forward folds and sweep points (walkforward.py, sweeps.py) are rows of the same work with a
parent; `children_finish` lets the last child to finish aggregate the parent, exactly once.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from django_q.tasks import async_task

from dashboard.events import broadcast_on_commit
from decisions.audit_services import git_commit
from decisions.models import TradingConfig
from decisions.selectors import trading_config_get
from execution.backtest import csv_source, runs
from execution.models import BacktestRun
from market.models import Candle, Instrument, Timeframe
from market.timeframes import floor_open_time_ms, timeframe_ms

EVENT = "backtest"
PROGRESS_STEPS = 100            # bars_done is written (and broadcast) at most this often per run
TASK_TIMEOUT_S = 6 * 3600       # a django-q2 task may run this long; the cluster default (240 s) is for cycles
MAX_EQUITY = Decimal("1E12")
MAX_SYMBOLS = 10                # traded on one account with shared limits (runs.backtest_start)
# TradingConfig admin fields a backtest does not take as parameters: the live switches (a backtest
# keeps its own simulated breaker) and the timeframe, which is a field of the request itself.
NOT_PARAMETERS = frozenset({"paused", "safe_until", "decision_timeframe", "change_reason"})
FINISHED = (BacktestRun.Status.DONE, BacktestRun.Status.FAILED)
# Where a run reads its bars: the stored candles, or the recorded CSV files of MARKET_DATA_DIR
# (csv_source; the same loader as `manage.py backtest --source csv`).
DB, CSV = "db", csv_source.SOURCE
SOURCES = {DB: "stored candles", CSV: "recorded CSV files (MARKET_DATA_DIR)"}
_TRUTH = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


class BacktestRefused(ValueError):
    """The request cannot run; `errors` maps each bad field ("parameters.<name>" inside the parameters) to why.

    Nothing was stored. The operator fixes the named fields and submits again.
    """

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.errors.items()))


@dataclass(frozen=True)
class BacktestRequest:
    """A checked request: what `run_create` stores."""

    instruments: tuple[Instrument, ...]
    timeframe: str
    start: datetime
    end: datetime
    starting_equity: Decimal
    config: TradingConfig          # unsaved copy with the overrides applied; never saved
    overrides: dict                # the parameters given, as stored (JSON values)
    source: str = DB               # DB or CSV
    market: str = ""               # CSV: "usdm" or "spot" files only; "" reads USD-M where they cover it, else spot

    def source_parameters(self) -> dict:
        """Return what the stored parameters say of the data source: nothing for the stored candles."""
        return {"source": self.source, "market": self.market} if self.source == CSV else {}


# Parameters: admin-editable TradingConfig fields, validated by the model.

def parameter_names() -> tuple[str, ...]:
    """Return the trading-configuration fields a backtest may override: those the admin edits."""
    from decisions.admin import TradingConfigAdmin  # the admin's fieldsets say what a trader may edit

    names = [name for _, options in TradingConfigAdmin.fieldsets for name in options["fields"]]
    return tuple(name for name in names if name not in NOT_PARAMETERS)


def _python(field: models.Field, value):
    # Form text and JSON both arrive here: "true", 0.5, "0.5", '{"rules": 2}'.
    if isinstance(field, models.BooleanField) and isinstance(value, str):
        value = _TRUTH.get(value.strip().lower(), value)
    elif isinstance(field, models.JSONField) and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError(f"{value!r} is not JSON") from None
    elif isinstance(field, models.DecimalField) and isinstance(value, float):
        value = repr(value)      # 0.1 means 0.1, not its binary neighbour
    elif isinstance(value, str):
        value = value.strip()
    return field.to_python(value)


def parameters_json(config: TradingConfig) -> dict:
    """Return every configuration value as runs.backtest_start stores it (JSON: decimals and times as text)."""
    return json.loads(json.dumps(model_to_dict(config), cls=DjangoJSONEncoder))


def config_with(base: TradingConfig, overrides: dict, *, prefix: str = "parameters") -> TradingConfig:
    """Return an unsaved copy of `base` with `overrides` applied; BacktestRefused names each bad field."""
    if not isinstance(overrides, dict):
        raise BacktestRefused({prefix: "must be a mapping of trading parameters to values"})
    allowed = parameter_names()
    config, errors = copy.copy(base), {}
    for name, value in overrides.items():
        if name not in allowed:
            errors[f"{prefix}.{name}"] = "not an admin-editable trading parameter"
            continue
        try:
            setattr(config, name, _python(TradingConfig._meta.get_field(name), value))
        except ValidationError as exc:
            errors[f"{prefix}.{name}"] = " ".join(exc.messages)
    try:
        # Every field's validators and the configuration's own clean(): ranges, choices, sums to 1.
        config.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(prefix if name == NON_FIELD_ERRORS else f"{prefix}.{name}", " ".join(messages))
    if errors:
        raise BacktestRefused(errors)
    for name in overrides:
        field = TradingConfig._meta.get_field(name)
        value = getattr(config, name)
        if isinstance(field, models.DecimalField) and value is not None:
            # As the database hands a saved value back: 2.5 reads 2.50 in a 2-place field.
            setattr(config, name, value.quantize(Decimal(1).scaleb(-field.decimal_places)))
    return config


def config_base(timeframe: str) -> TradingConfig:
    """Return a copy of the configuration in force, as a backtest starts from it: not paused, no breaker."""
    config = copy.copy(trading_config_get())
    config.paused, config.safe_until, config.decision_timeframe = False, None, timeframe
    return config


def config_from_parameters(parameters: dict) -> TradingConfig:
    """Return the unsaved configuration a run stored in `parameters` (see `parameters_json`)."""
    config = TradingConfig()
    for field in TradingConfig._meta.concrete_fields:
        if not field.primary_key and field.name in parameters:
            setattr(config, field.attname, field.to_python(parameters[field.name]))
    return config


def overrides_label(overrides: dict) -> str:
    """Return a run's short label from its parameters: "edge_threshold=0.5, max_leverage=2"."""
    return ", ".join(f"{name}={value}" for name, value in overrides.items())[:64]


# The rest of the request.

def _utc(moment, field: str, errors: dict) -> datetime | None:
    if not isinstance(moment, datetime):
        errors[field] = "must be a date and time"
    elif timezone.is_naive(moment):
        errors[field] = "must carry a time zone (UTC)"
    else:
        return moment.astimezone(dt_timezone.utc)
    return None


def _on_grid(moment: datetime | None, timeframe: str, field: str, errors: dict) -> None:
    if moment is None or timeframe not in Timeframe.values:
        return
    ms = int(moment.timestamp() * 1000)
    if floor_open_time_ms(ms, timeframe) != ms:
        errors[field] = f"{moment:%Y-%m-%d %H:%M} is not a {timeframe} bar close"


def instruments_find(symbols, errors: dict) -> tuple[Instrument, ...]:
    """Return the instruments of venue `symbols` (active ones first), noting unknown ones in errors."""
    symbols = list(symbols) if isinstance(symbols, Iterable) and not isinstance(symbols, str) else []
    if not symbols:
        errors["symbols"] = "give at least one symbol, e.g. BTCUSDT"
        return ()
    if len(symbols) > MAX_SYMBOLS:
        errors["symbols"] = f"{len(symbols)} symbols; at most {MAX_SYMBOLS} per run"
        return ()
    found, unknown = [], []
    for symbol in dict.fromkeys(str(s).strip().upper() for s in symbols):
        instrument = Instrument.objects.filter(exchange_symbol=symbol).order_by("-is_active", "pk").first()
        if instrument is None:
            unknown.append(symbol)
        else:
            found.append(instrument)
    if unknown:
        known = ", ".join(sorted(set(Instrument.objects.values_list("exchange_symbol", flat=True)))) or "none"
        errors["symbols"] = f"unknown symbol {', '.join(unknown)}; stored: {known}"
    return tuple(found)


def equity_check(value, errors: dict) -> Decimal | None:
    """Return the starting equity as a Decimal in (0, 1e12], noting a bad one in errors."""
    try:
        equity = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors["starting_equity"] = f"{value!r} is not a number"
        return None
    if not equity.is_finite() or equity <= 0 or equity > MAX_EQUITY:
        errors["starting_equity"] = "must be more than 0 and at most 1,000,000,000,000 USDT"
        return None
    return equity


def range_check(timeframe, start, end, errors: dict) -> tuple[datetime | None, datetime | None]:
    """Return the range as aware UTC bar closes, noting a bad timeframe, start or end in errors."""
    if timeframe not in Timeframe.values:
        errors["timeframe"] = f"unknown timeframe {timeframe!r}; use {', '.join(Timeframe.values)}"
    start, end = _utc(start, "start", errors), _utc(end, "end", errors)
    _on_grid(start, timeframe, "start", errors)
    _on_grid(end, timeframe, "end", errors)
    if start is not None and end is not None and start >= end:
        errors["end"] = f"{end:%Y-%m-%d %H:%M} is not after the start {start:%Y-%m-%d %H:%M}"
    return start, end


def candles_check(instruments, timeframe: str, start: datetime, end: datetime, history_bars: int,
                  errors: dict) -> None:
    """Note in errors an instrument without stored candles in the range or too few for the warm-up."""
    step = timedelta(milliseconds=timeframe_ms(timeframe))
    since = start - step * (history_bars + 1)
    for instrument in instruments:
        stored = Candle.objects.filter(instrument=instrument, timeframe=timeframe)
        # The bar decided on at close t opened at t - step.
        inside = stored.filter(open_time__gte=start - step, open_time__lte=end - step).count()
        if not inside:
            errors["start"] = (f"{instrument.exchange_symbol} has no stored {timeframe} candles closing from "
                               f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}")
            return
        # The same rule runs.backtest_start applies: history_bars candles from the warm-up's start.
        have = stored.filter(open_time__gte=since, open_time__lt=end).count()
        if have < history_bars:
            errors["start"] = (f"{instrument.exchange_symbol} {timeframe}: {have} stored candles from "
                               f"{since:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}, need {history_bars} "
                               f"before the start for the warm-up")
            return


def source_check(source, market, errors: dict) -> tuple[str, str]:
    """Return the data source and CSV market asked for ("" or None: the stored candles), noting bad ones in errors."""
    source, market = (source or DB), (market or "")
    if source not in SOURCES:
        errors["source"] = f"unknown source {source!r}; use {' or '.join(SOURCES)}"
    elif market and source != CSV:
        errors["market"] = "a market chooses among the CSV files: it needs the csv source"
    elif market not in ("", *csv_source.MARKETS):
        errors["market"] = f"unknown market {market!r}; use {' or '.join(csv_source.MARKETS)} (or none for either)"
    return source, market


def data_check(request: BacktestRequest, configs: Iterable[TradingConfig], errors: dict) -> None:
    """Note in errors what keeps the request's source from giving every configuration its bars and warm-up.

    The stored candles are counted (candles_check). The CSV files are read as the run will read them,
    for the timeframes of all `configs` and the longest warm-up: a missing, short or broken file is
    named under "source" before anything is stored (reading a month of 1m bars takes about 0.1 s).
    """
    configs = list(configs)
    history_bars = max(config.history_bars for config in configs)
    if request.source == DB:
        candles_check(request.instruments, request.timeframe, request.start, request.end, history_bars, errors)
        return
    widest = copy.copy(request.config)
    widest.history_bars = history_bars
    widest.structure_timeframes = ",".join(dict.fromkeys(
        tf for config in configs for tf in config.structure_timeframe_list()))
    try:
        csv_source.csv_symbols_load(instruments=request.instruments, config=widest, start=request.start,
                                    end=request.end, market=request.market or None)
    except ValueError as exc:    # CsvSourceError, or a file failing validation (CsvFormatError)
        errors["source"] = str(exc)


def request_check_with(errors: dict[str, str], **request) -> BacktestRequest:
    """Return request_check(**request), refusing with its problems and `errors` (the caller's own) together."""
    try:
        checked = request_check(**request)
    except BacktestRefused as exc:
        raise BacktestRefused({**exc.errors, **errors}) from None
    if errors:
        raise BacktestRefused(errors)
    return checked


def request_check(*, symbols, timeframe, start, end, starting_equity, parameters, source=DB,
                  market="", data: bool = True) -> BacktestRequest:
    """Return the checked request, or raise BacktestRefused naming every bad field; nothing is written.

    `data=False` leaves out the check of the source's bars (`data_check`): a sweep or walk-forward
    checks them once for all its grid's configurations instead.
    """
    errors: dict[str, str] = {}
    instruments = instruments_find(symbols, errors)
    start, end = range_check(timeframe, start, end, errors)
    equity = equity_check(starting_equity, errors)
    source, market = source_check(source, market, errors)
    config = None
    if timeframe in Timeframe.values:
        try:
            config = config_with(config_base(timeframe), parameters or {})
        except BacktestRefused as exc:
            errors.update(exc.errors)
    if errors:
        raise BacktestRefused(errors)
    stored = parameters_json(config)
    overrides = {name: stored[name] for name in (parameters or {})}
    request = BacktestRequest(instruments, timeframe, start, end, equity, config, overrides, source, market)
    if data:
        data_check(request, [config], errors)
    if errors:
        raise BacktestRefused(errors)
    return request


# Rows and the queue.

def bars_between(start: datetime, end: datetime, timeframe: str) -> int:
    """Return how many bar closes of `timeframe` run from `start` to `end`, both included."""
    return int((end - start) / timedelta(milliseconds=timeframe_ms(timeframe))) + 1


def run_create(request: BacktestRequest, *, kind: str, actor: str, now: datetime, code_version: str,
               config: TradingConfig | None = None, parent: BacktestRun | None = None, label: str = "",
               start: datetime | None = None, end: datetime | None = None,
               parameters: dict | None = None) -> BacktestRun:
    """Store one QUEUED run of `request` (or of its `start`..`end` window and `config`)."""
    start, end = start or request.start, end or request.end
    symbols = [i.exchange_symbol for i in request.instruments]
    return BacktestRun.objects.create(
        kind=kind, parent=parent, label=label[:64], requested_by=actor[:150], instrument=request.instruments[0],
        symbols=symbols, timeframe=request.timeframe, start=start, end=end,
        starting_equity_usdt=request.starting_equity,
        parameters={**(parameters if parameters is not None else parameters_json(config or request.config)),
                    **request.source_parameters()},
        code_version=code_version[:64], status=BacktestRun.Status.QUEUED,
        bars_total=bars_between(start, end, request.timeframe), created_at=now)


def enqueue_on_commit(task: str, run_ids: list[int]) -> None:
    """Queue `task(run_id)` for each run once the rows are committed (a worker could not see them before)."""
    def send():
        for run_id in run_ids:
            async_task(task, run_id, task_name=f"backtest-{run_id}", timeout=TASK_TIMEOUT_S)
    transaction.on_commit(send)


def backtest_submit(*, symbols: list[str], timeframe: str, start, end, starting_equity: Decimal,
                    parameters: dict | None, actor: str, now, source: str = DB, market: str = "") -> BacktestRun:
    """Check the request, store it as a QUEUED run and queue it; raise BacktestRefused naming bad fields."""
    request = request_check(symbols=symbols, timeframe=timeframe, start=start, end=end,
                            starting_equity=starting_equity, parameters=parameters, source=source, market=market)
    with transaction.atomic():
        run = run_create(request, kind=BacktestRun.Kind.RUN, actor=actor, now=now, code_version=git_commit(),
                         label=overrides_label(request.overrides))
        progress_send(run)
        enqueue_on_commit("execution.tasks_backtest.backtest_execute", [run.pk])
    return run


# Running one row.

def progress_payload(run: BacktestRun) -> dict:
    """Return the "backtest" live event of a run: its id, parent, status and bars done."""
    total = run.bars_total or 0
    return {"run_id": run.pk, "parent_id": run.parent_id, "kind": run.kind, "label": run.label,
            "status": run.status, "bars_done": run.bars_done, "bars_total": total,
            "pct": round(100 * run.bars_done / total, 1) if total else 0.0, "error": run.error[:500]}


def progress_send(run: BacktestRun) -> None:
    """Broadcast the run's progress once the current transaction commits."""
    broadcast_on_commit(EVENT, progress_payload(run))


class Progress:
    """The engine's progress callback: bars_done written and broadcast at most every 1 % of the run."""

    def __init__(self, run: BacktestRun):
        self.run = run

    def __call__(self, done: int, total: int) -> None:
        every = -(-total // PROGRESS_STEPS)
        if done % every and done != total:
            return
        self.run.bars_done, self.run.bars_total = done, total
        BacktestRun.objects.filter(pk=self.run.pk).update(bars_done=done, bars_total=total)
        progress_send(self.run)


def run_claim(run_id: int) -> BacktestRun | None:
    """Mark a QUEUED run RUNNING and return it; None when it is gone or another worker has it."""
    if not BacktestRun.objects.filter(pk=run_id, status=BacktestRun.Status.QUEUED).update(
            status=BacktestRun.Status.RUNNING):
        return None
    run = BacktestRun.objects.select_related("instrument").get(pk=run_id)
    progress_send(run)
    if run.parent_id and BacktestRun.objects.filter(pk=run.parent_id, status=BacktestRun.Status.QUEUED).update(
            status=BacktestRun.Status.RUNNING):
        progress_send(BacktestRun.objects.defer("trades", "equity").get(pk=run.parent_id))
    return run


def run_instruments(run: BacktestRun) -> list[Instrument]:
    """Return the instruments a stored run trades: its first, then the other symbols it lists."""
    errors: dict[str, str] = {}
    others = instruments_find(run.symbols[1:], errors) if len(run.symbols) > 1 else ()
    if errors:
        raise ValueError(errors["symbols"])
    return [run.instrument, *others]


def pipeline_run(run: BacktestRun, config: TradingConfig, progress: Callable[[int, int], None]) -> BacktestRun:
    """Run the live pipeline over the run's source (stored candles or CSV files) with `config`; store the results."""
    stored = run.parameters or {}
    loader = csv_source.csv_loader(market=stored.get("market") or None) if stored.get("source") == CSV else None
    return runs.backtest_start(timeframe=run.timeframe, start=run.start, end=run.end,
                               starting_equity=run.starting_equity_usdt, instruments=run_instruments(run),
                               config=config, run=run, progress=progress, loader=loader)


def run_into(run: BacktestRun) -> BacktestRun:
    """Run a claimed row with the configuration it stores; a failure is stored on it (FAILED, the error)."""
    try:
        config = config_from_parameters(run.parameters)
        config.decision_timeframe = run.timeframe
        run = pipeline_run(run, config, Progress(run))
    except Exception as exc:  # any fault ends this run only; the worker and the other runs go on
        run.status, run.error, run.finished_at = BacktestRun.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000], \
            timezone.now()
        BacktestRun.objects.filter(pk=run.pk).update(status=run.status, error=run.error, finished_at=run.finished_at)
    progress_send(run)
    return run


def backtest_execute(run_id: int) -> BacktestRun | None:
    """Run a queued run once; None when another worker claimed it first."""
    run = run_claim(run_id)
    return run_into(run) if run is not None else None


# Parents: walk-forwards and sweeps.

def descendants(parent: BacktestRun):
    """Return the runs under `parent`: its children and theirs (a fold's in-sample candidates)."""
    return BacktestRun.objects.filter(models.Q(parent=parent) | models.Q(parent__parent=parent))


def children_finish(parent_id: int, aggregate: Callable[[BacktestRun, list[BacktestRun]], None]) -> bool:
    """Aggregate the parent when every child has finished; return True for the one call that did.

    Each child calls this after storing its own end. The parent row is locked, so of children
    finishing at once on several workers exactly one sees them all finished and the parent open.
    """
    with transaction.atomic():
        parent = BacktestRun.objects.select_for_update().get(pk=parent_id)
        if parent.status in FINISHED:
            return False
        children = list(parent.children.select_related("instrument").order_by("pk"))
        parent.bars_done = sum(descendants(parent).values_list("bars_done", flat=True))
        if any(child.status not in FINISHED for child in children):
            parent.save(update_fields=["bars_done"])
            progress_send(parent)
            return False
        try:
            aggregate(parent, children)
        except Exception as exc:  # the parent must end, not stay RUNNING: say why it could not be summed up
            parent.status, parent.error = BacktestRun.Status.FAILED, f"aggregation: {type(exc).__name__}: {exc}"[:2000]
        parent.bars_done, parent.finished_at = parent.bars_total, timezone.now()
        parent.save()
        progress_send(parent)
    return True
