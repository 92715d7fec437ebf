"""Drift: live (or paper) trading against its backtest, one decision moment at a time. Pure: no Django, no I/O.

The shell (`execution.drift`) loads both sides into `Moment`s; `drift_compare` returns the rows and
the summary that splits the PnL gap (live PnL - backtest PnL) into buckets that add up to it:

- signal: the whole PnL (fees and funding included) of trades only one side took, or took in
  opposite directions.
- size: the same trade with another quantity, priced at the backtest's prices:
  dir * (Xb * (Qx_live - Qx_bt) - Eb * (Q_live - Q_bt)), E the average entry price, X the average
  exit price over every exit leg (the open remainder counts as an exit at the end's mark price),
  Q and Qx the entered and exited quantities.
- latency: the market's move while the live entry waited: -dir * (M(t_live) - M(t_bt)) * Q_live,
  where t is the entry's first fill time (the backtest fills at the bar close, the live venue when
  the order reached it) and M(t) is the last stored close known at t (the finest stored
  timeframe, the price the engine marks with). It is measured at the candles' resolution: an order
  filled before the next stored bar closed has no latency.
- fill price: what is left of the entry price difference, -dir * (E_live - E_bt) * Q_live - latency,
  plus, on each exit leg both sides filled (tp1, sl ...), dir * (p_live - p_bt) * q_live: slippage.
- exit path: the rest of the exit price difference, dir * (X_live - X_bt) * Qx_live minus the
  exit legs' fill price: exits only one side took (live stopped out where the backtest took a target).
- fees: -(fees_live - fees_bt) of trades both took; funding: funding_live - funding_bt, plus live
  funding booked on no compared trade.
- residual: the gap minus every bucket. The buckets are computed from the fills, the gap from the
  PnL the positions booked, so a residual is a position whose booked PnL disagrees with its fills
  (a fee or funding written to one and not the other); 0 when the books are consistent.

Slippage per leg, in bps of the backtest price, positive when the live price was worse: a buy's
(p_live - p_bt - latency move) / p_bt, a sell's the opposite. The report's slippage is the mean of
its absolute values over every leg both sides filled.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from functools import wraps

BUCKETS = ("signal", "size", "fill_price", "latency", "exit_path", "fees", "funding")
BPS = Decimal(10_000)
BPS_PLACES = Decimal("0.0001")
PRICE_PLACES = Decimal("1E-10")
ZERO = Decimal(0)
MARK_LEG = "mark"


# Products of 10-decimal prices and quantities reach 27 digits: computed with room to spare, every
# bucket is exact and the buckets add up to the gap to the last digit.
PRECISION = 60


def _exact(function):
    @wraps(function)
    def wrapped(*args, **kwargs):
        with localcontext(prec=PRECISION):
            return function(*args, **kwargs)
    return wrapped


@dataclass(frozen=True, slots=True)
class Leg:
    """The fills of one order leg (a chase's entry legs count as one): quantity, notional (sum of p x q), fees."""

    name: str
    quantity: Decimal
    notional: Decimal
    fee_usdt: Decimal

    @property
    @_exact
    def price(self) -> Decimal:
        """Return the average fill price."""
        return self.notional / self.quantity if self.quantity else ZERO


@_exact
def leg_of(name: str, fills: Iterable[tuple[Decimal, Decimal, Decimal]]) -> Leg:
    """Return the leg of fills given as (price, quantity, fee)."""
    fills = list(fills)
    return Leg(name, sum((q for _, q, _ in fills), ZERO), sum((p * q for p, q, _ in fills), ZERO),
               sum((f for _, _, f in fills), ZERO))


@dataclass(frozen=True, slots=True)
class Trade:
    """One position as one side booked it up to the report's end."""

    side: str                       # LONG or SHORT
    entry: Leg
    exits: tuple[Leg, ...]          # every exit leg filled by the end, then the open remainder as MARK_LEG
    fees_usdt: Decimal              # every fill's fee, plus a liquidation's clearance
    funding_usdt: Decimal           # paid (-) or received (+) up to the end
    pnl_usdt: Decimal | None        # as booked (realised + open remainder at the mark); None: from the fills
    filled_at: datetime | None      # the entry's first fill
    sent_at: datetime | None        # the entry's first order
    fill_mark: Decimal | None       # M(filled_at): the last stored close known then


@dataclass(frozen=True, slots=True)
class Side:
    """What one side decided at a moment, and the trade it opened then (if any)."""

    action: str
    outcome: str
    reason: str
    trade: Trade | None = None
    config_version: int | None = None


@dataclass(frozen=True, slots=True)
class Moment:
    instrument: str
    as_of: datetime
    live: Side | None
    backtest: Side | None


def _dir(side: str) -> int:
    return 1 if side == "LONG" else -1


def _exited(trade: Trade) -> Leg:
    """Return every exit leg, the open remainder included, as one."""
    return Leg("exits", sum((leg.quantity for leg in trade.exits), ZERO),
               sum((leg.notional for leg in trade.exits), ZERO), ZERO)


@_exact
def trade_pnl(trade: Trade) -> Decimal:
    """Return the trade's PnL from its fills: gross of entry and exits, less fees, plus funding."""
    gross = _dir(trade.side) * (_exited(trade).notional - trade.entry.notional)
    return gross - trade.fees_usdt + trade.funding_usdt


def booked_pnl(trade: Trade | None) -> Decimal:
    """Return the PnL the side booked for the trade (from the fills when it has none), 0 without a trade."""
    if trade is None:
        return ZERO
    return trade.pnl_usdt if trade.pnl_usdt is not None else trade_pnl(trade)


def _bps(value: Decimal, base: Decimal) -> Decimal:
    return (value / base * BPS).quantize(BPS_PLACES) if base else ZERO


@_exact
def leg_rows(live: Trade, backtest: Trade) -> list[dict]:
    """Return each leg both sides filled (not the open remainder): prices, quantities, slippage and latency in bps."""
    direction = _dir(live.side)
    rows = []
    by_name = {leg.name: leg for leg in backtest.exits}
    pairs = [(live.entry, backtest.entry, True)] + [(leg, by_name[leg.name], False) for leg in live.exits
                                                    if leg.name in by_name and leg.name != MARK_LEG]
    for mine, theirs, is_entry in pairs:
        buys = direction if is_entry else -direction     # +1 for a buy order, -1 for a sell
        moved = _latency_move(live, backtest) if is_entry else ZERO
        rows.append({"leg": "entry" if is_entry else mine.name, "live_price": mine.price,
                     "backtest_price": theirs.price, "live_quantity": mine.quantity,
                     "backtest_quantity": theirs.quantity,
                     "slippage_bps": _bps(buys * (mine.price - theirs.price - moved), theirs.price),
                     "latency_bps": _bps(buys * moved, theirs.price)})
    return rows


def _latency_move(live: Trade, backtest: Trade) -> Decimal:
    if live.fill_mark is None or backtest.fill_mark is None:
        return ZERO
    return live.fill_mark - backtest.fill_mark


@_exact
def trade_split(live: Trade, backtest: Trade) -> dict[str, Decimal]:
    """Return the buckets of the PnL difference of one trade both sides took in the same direction."""
    direction = _dir(live.side)
    exits_live, exits_bt = _exited(live), _exited(backtest)
    # The live quantities at the backtest's average prices: the one point the price terms (before
    # it) and the size terms (after it) share, so they add up to the notional differences exactly.
    # The prices are rounded to the database's 10 places: the buckets stay finite decimals.
    entry_pivot = backtest.entry.price.quantize(PRICE_PLACES) * live.entry.quantity
    exit_pivot = exits_bt.price.quantize(PRICE_PLACES) * exits_live.quantity
    latency = -direction * _latency_move(live, backtest) * live.entry.quantity
    by_name = {leg.name: leg for leg in backtest.exits}
    exit_legs = sum((direction * (leg.price - by_name[leg.name].price) * leg.quantity
                     for leg in live.exits if leg.name in by_name), ZERO)
    return {
        "signal": ZERO,
        "size": direction * ((exit_pivot - exits_bt.notional) - (entry_pivot - backtest.entry.notional)),
        "fill_price": -direction * (live.entry.notional - entry_pivot) - latency + exit_legs,
        "latency": latency,
        "exit_path": direction * (exits_live.notional - exit_pivot) - exit_legs,
        "fees": -(live.fees_usdt - backtest.fees_usdt),
        "funding": live.funding_usdt - backtest.funding_usdt,
    }


def trade_kind(live: Trade | None, backtest: Trade | None) -> str | None:
    """Return "both", "live only", "backtest only", "direction" (opposite sides) or None (no trade)."""
    if live is None and backtest is None:
        return None
    if live is None:
        return "backtest only"
    if backtest is None:
        return "live only"
    return "both" if live.side == backtest.side else "direction"


@_exact
def moment_split(live: Trade | None, backtest: Trade | None) -> dict[str, Decimal]:
    """Return the buckets of one moment's PnL difference (all zero without a trade)."""
    if trade_kind(live, backtest) == "both":
        return trade_split(live, backtest)
    split = dict.fromkeys(BUCKETS, ZERO)
    split["signal"] = booked_pnl(live) - booked_pnl(backtest)
    return split


@dataclass(frozen=True, slots=True)
class Comparison:
    rows: list[dict]
    summary: dict
    slippage_bps: Decimal | None      # mean absolute slippage over legs both sides filled; None without any


def _trade_side(trade: Trade | None) -> dict | None:
    if trade is None:
        return None
    exits = _exited(trade)
    return {"side": trade.side, "entry_price": trade.entry.price, "quantity": trade.entry.quantity,
            "exit_price": exits.price if exits.quantity else None, "fees_usdt": trade.fees_usdt,
            "funding_usdt": trade.funding_usdt, "pnl_usdt": booked_pnl(trade),
            "sent_at": trade.sent_at, "filled_at": trade.filled_at}


def _latency_ms(moment: Moment, at: datetime | None) -> int | None:
    return None if at is None else int((at - moment.as_of).total_seconds() * 1000)


def _side(side: Side | None) -> dict | None:
    if side is None:
        return None
    return {"action": side.action, "outcome": side.outcome, "reason": side.reason,
            "config_version": side.config_version, "trade": _trade_side(side.trade)}


def moment_row(moment: Moment) -> dict:
    """Return the report row of one moment: both sides, the trade comparison and its buckets."""
    live = moment.live.trade if moment.live else None
    backtest = moment.backtest.trade if moment.backtest else None
    same = (moment.live is not None and moment.backtest is not None
            and (moment.live.action, moment.live.outcome) == (moment.backtest.action, moment.backtest.outcome))
    kind = trade_kind(live, backtest)
    row = {"instrument": moment.instrument, "as_of": moment.as_of, "same": same, "trade": kind,
           "live": _side(moment.live), "backtest": _side(moment.backtest)}
    if kind is None:
        return row
    split = moment_split(live, backtest)
    row.update(split=split, gap_usdt=booked_pnl(live) - booked_pnl(backtest),
               legs=leg_rows(live, backtest) if kind == "both" else [],
               sent_ms=_latency_ms(moment, live.sent_at) if live else None,
               fill_ms=_latency_ms(moment, live.filled_at) if live else None)
    row["residual_usdt"] = row["gap_usdt"] - sum(split.values(), ZERO)
    return row


def _median(values: list[int]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@_exact
def drift_compare(moments: list[Moment], *, unmatched_funding_usdt: Decimal = ZERO) -> Comparison:
    """Return the rows (by instrument and moment) and the summary of the PnL gap split into buckets.

    `unmatched_funding_usdt` is live funding booked in the window on no compared trade (a venue
    payment the books could not tie to a position): it is live PnL and lands in the funding bucket.
    """
    rows = [moment_row(m) for m in sorted(moments, key=lambda m: (m.as_of, m.instrument))]
    traded = [r for r in rows if r["trade"] is not None]
    split = {name: sum((r["split"][name] for r in traded), ZERO) for name in BUCKETS}
    split["funding"] += unmatched_funding_usdt
    live_pnl = sum((booked_pnl(m.live.trade if m.live else None) for m in moments), ZERO) + unmatched_funding_usdt
    backtest_pnl = sum((booked_pnl(m.backtest.trade if m.backtest else None) for m in moments), ZERO)
    gap = live_pnl - backtest_pnl
    slippages = [abs(leg["slippage_bps"]) for r in traded for leg in r["legs"]]
    slippage = (sum(slippages, ZERO) / len(slippages)).quantize(BPS_PLACES) if slippages else None
    summary = {
        "live_pnl_usdt": live_pnl, "backtest_pnl_usdt": backtest_pnl, "gap_usdt": gap, "split": split,
        "residual_usdt": gap - sum(split.values(), ZERO),
        "decisions": _decision_counts(rows),
        "trades": {kind: sum(1 for r in traded if r["trade"] == kind)
                   for kind in ("both", "live only", "backtest only", "direction")},
        "slippage": {"average_abs_bps": slippage, "legs": len(slippages),
                     "max_abs_bps": max(slippages) if slippages else None},
        "latency": _latency_summary(traded),
    }
    return Comparison(rows, summary, slippage)


def _decision_counts(rows: list[dict]) -> dict[str, int]:
    both = [r for r in rows if r["live"] is not None and r["backtest"] is not None]
    return {"moments": len(rows), "compared": len(both), "same": sum(1 for r in both if r["same"]),
            "different": sum(1 for r in both if not r["same"]),
            "live_only": sum(1 for r in rows if r["backtest"] is None),
            "backtest_only": sum(1 for r in rows if r["live"] is None)}


def _latency_summary(traded: list[dict]) -> dict:
    sent = [r["sent_ms"] for r in traded if r.get("sent_ms") is not None]
    filled = [r["fill_ms"] for r in traded if r.get("fill_ms") is not None]
    return {"entries": len(filled), "median_sent_ms": _median(sent), "max_sent_ms": max(sent, default=None),
            "median_fill_ms": _median(filled), "max_fill_ms": max(filled, default=None)}
