"""The drift report: replay a window's stored inputs through the backtester and diff it with what the account did.

`drift_report_build` loads, for the instruments the account traded in [start, end], every stored
input the live cycle could have read and the trading configuration as it was at `start`
(`execution.drift_replay`), runs them through `execution.backtest.engine.backtest_run` on one
account from the account's balance just before `start`, and compares decision by decision with
the account's Decision, Order, Fill, Position and FundingPayment rows (`execution.backtest.drift`
defines the rows, the buckets and the slippage). The report is stored as a DriftReport; when the
average slippage passes the limit it alerts: a dashboard "alert" event and a WARNING log line.

What the replay cannot reproduce is listed in the summary's "caveats" rather than hidden: the
backtest starts flat, without the account's earlier closed trades (its calibrator and loss gates),
replays candles and funding rates only (no order books or other derivatives), rejects decisions
waiting for an operator's approval, and keeps the configuration of `start` for the whole window.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q

from dashboard.events import broadcast_on_commit
from decisions.audit_services import git_commit
from decisions.models import Decision, TradingConfig
from execution.backtest.drift import MARK_LEG, Comparison, Leg, Moment, Side, Trade, drift_compare, leg_of
from execution.backtest.engine import BacktestResult, backtest_run
from execution.backtest.runs import FUNDING_MARGIN, funding_load, marks_load
from execution.backtest.world import PLACES, InstrumentSpec, Market, SymbolData
from execution.drift_replay import (candles_for_replay, config_changes_after, gate_overrides_for_replay,
                                    trading_config_at)
from execution.models import Account, DriftReport, EquityPoint, FundingPayment, Order, Position
from execution.oms import make_intent_id
from execution.selectors import account_name_for
from market.models import DerivativesKind, DerivativesSample, Instrument, OrderBookSnapshot
from market.timeframes import timeframe_ms

logger = logging.getLogger(__name__)

DEFAULT_SLIPPAGE_LIMIT_BPS = Decimal("5")
DEFAULT_DAYS = 7


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def drift_slippage_limit_bps() -> Decimal:
    """Return the configured limit on the average absolute slippage (setting DRIFT_SLIPPAGE_LIMIT_BPS)."""
    return Decimal(str(getattr(settings, "DRIFT_SLIPPAGE_LIMIT_BPS", DEFAULT_SLIPPAGE_LIMIT_BPS)))


def drift_days() -> int:
    """Return how many days the nightly report covers (setting DRIFT_DAYS)."""
    return int(getattr(settings, "DRIFT_DAYS", DEFAULT_DAYS))


def _instruments(account: Account, start: datetime, end: datetime, timeframe: str) -> list[Instrument]:
    """Return the instruments decided on in the window that trade on `account` (by data source, or by its orders)."""
    decided = Instrument.objects.filter(decisions__timeframe=timeframe, decisions__as_of__gte=start,
                                        decisions__as_of__lte=end).distinct().order_by("pk")
    ordered = set(Order.objects.filter(account=account, decision__as_of__gte=start, decision__as_of__lte=end)
                  .values_list("instrument_id", flat=True))
    return [i for i in decided if i.pk in ordered or account_name_for(i.data_source) == account.name]


def _starting_balance(account: Account, start: datetime) -> Decimal:
    point = EquityPoint.objects.filter(account=account, ts__lt=start).order_by("-ts").first()
    return point.balance_usdt if point is not None else account.starting_balance_usdt


# The two sides as moments.

def _legs(fills: list[tuple[str, datetime, Decimal, Decimal, Decimal]]) -> tuple[Leg | None, list[Leg]]:
    """Return the entry leg (every entry* order as one) and the exit legs in order of their first fill."""
    by_leg: dict[str, list] = defaultdict(list)
    for leg, _, price, quantity, fee in sorted(fills, key=lambda f: f[1]):
        by_leg["entry" if leg.startswith("entry") else leg].append((price, quantity, fee))
    entry = leg_of("entry", by_leg.pop("entry")) if "entry" in by_leg else None
    return entry, [leg_of(name, rows) for name, rows in by_leg.items()]


def _with_mark(entry: Leg, exits: list[Leg], mark: Decimal | None) -> tuple[Leg, ...]:
    left = entry.quantity - sum((leg.quantity for leg in exits), Decimal(0))
    if left > 0 and mark is not None:
        exits = [*exits, leg_of(MARK_LEG, [(mark, left, Decimal(0))])]
    return tuple(exits)


def _open_pnl(side: str, quantity: Decimal, entry: Decimal, mark: Decimal | None) -> Decimal:
    if quantity <= 0 or mark is None:
        return Decimal(0)
    return (mark - entry) * quantity * (1 if side == "LONG" else -1)


def _mark_at(market: Market, moment: datetime | None) -> Decimal | None:
    return market.last_close(_ms(moment)) if moment is not None else None


def live_moments(*, account: Account, instrument: Instrument, timeframe: str, start: datetime, end: datetime,
                 market: Market) -> dict[datetime, Side]:
    """Return the account's decisions in the window by bar close, each with the position it opened (if any)."""
    decisions = list(Decision.objects.filter(instrument=instrument, timeframe=timeframe, as_of__gte=start,
                                             as_of__lte=end).order_by("as_of"))
    positions = {p.decision_id: p for p in Position.objects.filter(account=account, decision__in=decisions)}
    orders = defaultdict(list)
    for order in Order.objects.filter(account=account, decision__in=decisions).prefetch_related("fills"):
        orders[order.decision_id].append(order)
    mark = market.last_close(_ms(end))
    return {d.as_of: Side(d.action, d.outcome, d.reason,
                          _live_trade(positions[d.pk], orders[d.pk], end, mark, market) if d.pk in positions else None,
                          d.config_version)
            for d in decisions}


def _live_trade(position: Position, orders: list[Order], end: datetime, mark: Decimal | None,
                market: Market) -> Trade | None:
    fills = [(o.leg, f.ts, f.price, f.quantity, f.fee_usdt) for o in orders for f in o.fills.all()]
    entry, exits = _legs([f for f in fills if f[1] <= end])
    if entry is None:
        return None
    payments = list(position.funding_payments.values_list("ts", "amount_usdt"))
    fees = sum((f[4] for f in fills if f[1] <= end), Decimal(0))
    closed = position.closed_at is not None and position.closed_at <= end
    if closed and position.exit_reason == "liquidation":
        fees += position.fees_usdt - sum((f[4] for f in fills), Decimal(0))   # the venue's clearance fee
    booked = None      # exits or funding after the end: the booked PnL is not the window's, take the fills'
    if closed:
        booked = position.realized_pnl_usdt
    elif all(f[1] <= end for f in fills) and all(ts <= end for ts, _ in payments):
        booked = position.realized_pnl_usdt + _open_pnl(position.side, position.quantity, position.entry_price, mark)
    entry_orders = [o for o in orders if o.leg.startswith("entry")]
    filled_at = min(f[1] for f in fills if f[0].startswith("entry") and f[1] <= end)
    return Trade(position.side, entry, _with_mark(entry, exits, mark), fees,
                 sum((a for ts, a in payments if ts <= end), Decimal(0)), booked, filled_at,
                 min(o.created_at for o in entry_orders), _mark_at(market, filled_at))


def backtest_moments(*, result: BacktestResult | None, spec: InstrumentSpec, account_name: str, timeframe: str,
                     end: datetime, market: Market) -> dict[datetime, Side]:
    """Return the backtest's decisions of `spec`'s symbol by bar close, each with the position it opened (if any)."""
    if result is None:
        return {}
    symbol = spec.exchange_symbol
    fills = defaultdict(list)
    for fill in result.fills:
        fills[fill.client_order_id].append(fill)
    orders = defaultdict(list)
    for order in result.orders:
        orders[order.intent_id].append(order)
    positions = {p.decision_as_of_ms: p for p in result.trades if p.symbol == symbol}
    mark = market.last_close(_ms(end))
    out = {}
    for d in result.decisions:
        if d.symbol != symbol:
            continue
        position = positions.get(_ms(d.as_of))
        trade = None
        if position is not None:
            own = (orders[make_intent_id(account_name, spec.instrument_id, timeframe, d.as_of.isoformat())]
                   + orders[make_intent_id("exit", position.id)])
            trade = _backtest_trade(position, own, fills, mark, market)
        out[d.as_of] = Side(d.action, d.outcome, d.reason, trade)
    return out


def _backtest_trade(position, orders, fills, mark: Decimal | None, market: Market) -> Trade | None:
    rows = [(o.leg, f.ts, f.price, f.quantity, f.fee_usdt) for o in orders for f in fills[o.client_order_id]]
    entry, exits = _legs(rows)
    if entry is None:
        return None
    filled_at = min(r[1] for r in rows if r[0].startswith("entry"))
    booked = position.realized_pnl_usdt + _open_pnl(position.side, position.quantity, position.entry_price,
                                                    mark if position.status == "open" else None)
    return Trade(position.side, entry, _with_mark(entry, exits, mark), position.fees_usdt,
                 position.funding_usdt, booked, filled_at,
                 min(o.created_at for o in orders if o.leg.startswith("entry")), _mark_at(market, filled_at))


# The report.

def _caveats(account: Account, instruments: list[Instrument], config: TradingConfig, start: datetime,
             end: datetime) -> list[str]:
    notes = []
    carried = Position.objects.filter(account=account, opened_at__lt=start).filter(
        Q(closed_at__isnull=True) | Q(closed_at__gt=start)).count()
    if carried:
        notes.append(f"{carried} position(s) opened before the window were still open at its start: they are "
                     f"left out, and the backtest starts flat")
    earlier = Position.objects.filter(account=account, closed_at__lt=start).count()
    if earlier:
        notes.append(f"the live calibrator and loss gates knew {earlier} closed trade(s) from before the window; "
                     f"the backtest starts without them")
    changes = config_changes_after(config, start).filter(ts__lte=end).count()
    if changes:
        notes.append(f"the trading configuration changed {changes} time(s) inside the window; the backtest "
                     f"keeps version {config.version} (in force at the start) throughout")
    window = dict(instrument__in=instruments, ts__gte=start, ts__lte=end)
    if (DerivativesSample.objects.filter(**window).exclude(kind=DerivativesKind.FUNDING).exists()
            or OrderBookSnapshot.objects.filter(**window).exists()):
        notes.append("derivatives or order books were stored for the window: the backtester replays candles and "
                     "funding rates only")
    approved = Decision.objects.filter(instrument__in=instruments, as_of__gte=start, as_of__lte=end,
                                       approval=Decision.Approval.APPROVED).count()
    if approved:
        notes.append(f"{approved} decision(s) were approved by an operator: the backtest rejects decisions that "
                     f"wait for approval")
    return notes


def drift_json(value):
    """Return `value` as stored JSON: Decimals as text without exponent, to 10 places at most; times as ISO."""
    def plain(item):
        if isinstance(item, Decimal):
            if item.as_tuple().exponent < -10:      # averages of fills: the database's 10 places are enough
                item = item.quantize(PLACES)
            return "0" if item.is_zero() else format(item.normalize(), "f")
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [plain(v) for v in item]
        return item
    return json.loads(json.dumps(plain(value), cls=DjangoJSONEncoder))


def _align(start: datetime, end: datetime, timeframe: str) -> tuple[datetime, datetime]:
    step = timeframe_ms(timeframe)
    first = -(-_ms(start) // step) * step
    last = _ms(end) // step * step
    return datetime.fromtimestamp(first / 1000, tz=timezone.utc), datetime.fromtimestamp(last / 1000, tz=timezone.utc)


def _compare(account: Account, config: TradingConfig, instruments: list[Instrument], start: datetime,
             end: datetime) -> Comparison:
    # One run for every instrument, on one simulated account: the gates share it as the live ones do.
    # The mark klines too: under MARK_PRICE the live paper venue triggers stops on them, and so must the replay.
    symbols = [SymbolData(InstrumentSpec.of(i), candles_for_replay(instrument=i, config=config, start=start, end=end),
                          funding_load(instrument=i, start=start, end=end),
                          marks_load(instrument=i, since=start - FUNDING_MARGIN, until=end + FUNDING_MARGIN))
               for i in instruments]
    symbols = [s for s in symbols if config.decision_timeframe in s.candles]
    result = None
    if symbols:
        result = backtest_run(config=config, starting_equity=_starting_balance(account, start), start=start, end=end,
                              symbols=symbols, account_name=account.name, overrides=gate_overrides_for_replay())
    moments, funding = [], Decimal(0)
    by_id = {i.pk: i for i in instruments}
    for data in symbols:
        instrument, market = by_id[data.instrument.instrument_id], Market(data.candles, data.funding, data.marks)
        live = live_moments(account=account, instrument=instrument, timeframe=config.decision_timeframe,
                            start=start, end=end, market=market)
        tested = backtest_moments(result=result, spec=data.instrument, account_name=account.name,
                                  timeframe=config.decision_timeframe, end=end, market=market)
        moments += [Moment(str(instrument), as_of, live.get(as_of), tested.get(as_of))
                    for as_of in sorted(set(live) | set(tested))]
        funding += sum(FundingPayment.objects.filter(account=account, instrument=instrument, position__isnull=True,
                                                     ts__gte=start, ts__lte=end).values_list("amount_usdt", flat=True),
                       Decimal(0))
    return drift_compare(moments, unmatched_funding_usdt=funding)


def drift_report_build(*, account: Account, start: datetime, end: datetime, now: datetime,
                       slippage_limit_bps: Decimal | None = None) -> DriftReport:
    """Replay [start, end] (bar closes, aware UTC, snapped to the decision timeframe) and store the drift report.

    Raises ValueError, before anything is stored, for naive times or an empty window. Alerts (a
    dashboard "alert" event after commit and a WARNING log) when the average absolute slippage
    passes the limit (default: the DRIFT_SLIPPAGE_LIMIT_BPS setting).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("drift report: start and end must be timezone-aware (UTC)")
    limit = Decimal(slippage_limit_bps) if slippage_limit_bps is not None else drift_slippage_limit_bps()
    config = trading_config_at(start)
    start, end = _align(start, end, config.decision_timeframe)
    if end < start:
        raise ValueError(f"drift report: no {config.decision_timeframe} bar closes between {start:%Y-%m-%d %H:%M} "
                         f"and {end:%Y-%m-%d %H:%M}")
    instruments = _instruments(account, start, end, config.decision_timeframe)
    comparison = _compare(account, config, instruments, start, end)
    summary = {**comparison.summary, "timeframe": config.decision_timeframe, "config_version": config.version,
               "instruments": [str(i) for i in instruments],
               "caveats": _caveats(account, instruments, config, start, end)}
    alert = comparison.slippage_bps is not None and comparison.slippage_bps > limit
    with transaction.atomic():
        report = DriftReport.objects.create(
            account=account, start=start, end=end, created_at=now, code_version=git_commit()[:64],
            summary=drift_json(summary), rows=drift_json(comparison.rows), slippage_bps=comparison.slippage_bps,
            slippage_limit_bps=limit, alert=alert)
        if alert:
            _alert(report)
    return report


def _alert(report: DriftReport) -> None:
    message = (f"drift report #{report.pk} on {report.account.name}: average slippage {report.slippage_bps} bps "
               f"passed the limit of {report.slippage_limit_bps} bps ({report.start:%Y-%m-%d %H:%M} to "
               f"{report.end:%Y-%m-%d %H:%M} UTC)")
    logger.warning(message)
    broadcast_on_commit("alert", {"level": "warning", "account": report.account.name, "message": message,
                                  "drift_report": report.pk})


def drift_window(*, now: datetime, days: int, timeframe: str) -> tuple[datetime, datetime]:
    """Return (first, last) bar close of the last `days` days before `now`: days * bars a day closes."""
    if days < 1:
        raise ValueError(f"drift report: days must be at least 1, got {days}")
    step = timedelta(milliseconds=timeframe_ms(timeframe))
    _, end = _align(now, now, timeframe)
    return end - timedelta(days=days) + step, end


def drift_reports_all(*, now: datetime, account_name: str | None = None, days: int | None = None) -> dict[str, str]:
    """Store the report of every account (or the one named) over the last `days` (DRIFT_DAYS) days.

    Return an outcome per account name. One account's failure is logged and reported, and does
    not stop the others.
    """
    accounts = Account.objects.order_by("name")
    if account_name is not None:
        accounts = accounts.filter(name=account_name)
    outcomes = {}
    for account in accounts:
        try:
            start, end = drift_window(now=now, days=days or drift_days(),
                                      timeframe=trading_config_at(now).decision_timeframe)
            report = drift_report_build(account=account, start=start, end=end, now=now)
        except Exception as exc:   # the nightly job goes on with the next account
            logger.exception("drift report of %s failed", account.name)
            outcomes[account.name] = f"failed: {exc}"
            continue
        slippage = "no fills compared" if report.slippage_bps is None else f"slippage {report.slippage_bps} bps"
        outcomes[account.name] = (f"report {report.pk}: gap {report.summary['gap_usdt']} USDT, {slippage}"
                                  f"{' ALERT' if report.alert else ''}")
    return outcomes
