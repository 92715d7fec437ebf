"""Seed the live-path bench's database with days of past trading history (`live_path.py --history-days N`).

The live cycle's reads that grow with history (positions and fills for the risk facts, the
calibration trades, entries to book, the equity peak, the flow's derivatives look-backs, the
higher-timeframe views resampled from stored 15m bars) only show their cost on a database that
looks like months of running the bot. This writes, for one instrument (BTCUSDT 15m) and the
"paper" account, the N days that end just before the first warm-up candle:

- 15m candles: the real BTCUSDT 15m and 1h bars of MARKET_DATA_DIR (USD-M where recorded, else
  spot) as anchors; between anchors (the holdout month, days with only hourly bars) a
  deterministic Brownian bridge of the log price, so the series meets the warm-up's first open.
  No 1m bars: the cycle reads 1m only to resample the 5m structure when fewer than 50 5m bars
  are stored, and the bench's cycles store no 1m bars, so a 1m history would be read as stale bars.
- derivatives samples as the collectors store them (the backfill command's default periods but
  for mark/index at 1m), synthetic but for funding: funding every 8 h (the recorded USD-M rates
  where they exist), open interest 5m and 1h, mark/index/basis 5m and 1h, CVD 5m (about 336,000
  samples a year). They run on to the last cycle's close, as the collectors keep writing while
  the bot runs: the flow reads cut at its time, and without them the flow's look-backs would
  empty after the first cycles.
- per 15m bar what the engine writes every cycle: a snapshot, a flow and a decision (30 % LONG
  or SHORT with entry, stop, target and confidence; FLAT otherwise), shaped and sized like the
  live rows; one equity point.
- trades (about 12.6 a day) as the bench's configuration makes them: a LONG or SHORT decision
  with no open position enters at the close (market, 1 bp slip, taker fee, its entry order marked
  with the position where Order has that field); the position closes at the first
  later bar whose range reaches its stop (1 ATR, `sl`, slipped) or its target (1.5 R, `tp1`),
  with the entry order, the exit order (intent and legs as execution.services.position_reduce
  names them), a fill each, fees and realised PnL; the account's balance is the starting
  balance plus every realised PnL. A decision while a position is open is blocked (one_position).
- the audit chain: every record the live path would append (decision, gate; an entry's created,
  report, position_opened; an exit's created, report, position_closed), through the chain's own
  append (decisions.audit_services) in batches, so `verify_audit` holds.

Deterministic: numpy generators with a fixed seed, one per part (prices, derivatives, trades).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20_261_126
STEP_MS = 15 * 60_000
FIVE_MS = 5 * 60_000
HOUR_MS = 3_600_000
EIGHT_HOURS_MS = 8 * HOUR_MS
NON_FLAT_SHARE = 0.30
# When one side reaches its target before its stop, the side taken is that one this often: with
# 1.5 R targets and taker fees the year then ends near break-even (0.60 loses, 0.75 compounds).
WINNING_SIDE_SHARE = 0.67
BAR_SIGMA = 0.0025              # log-price step of a bridged 15m bar (BTC: ~0.25 %)
TICK = Decimal("0.1")
STEP_SIZE = Decimal("0.001")
TAKER_FEE = Decimal("0.0004")
SLIP = Decimal("0.0001")
RISK_FRACTION = Decimal("0.005")
LEVERAGE = Decimal("3")
BATCH = 2000
GATES = ("daily_loss", "weekly_drawdown", "max_drawdown", "loss_streak", "sl_streak", "profit_factor",
         "trades_per_day", "trading_hours", "news_mute", "cooldown", "one_position", "max_positions", "correlation",
         "order_rate", "turnover", "spread", "min_volume", "volatility", "rr_min", "costs")
STRATEGIES = ("rules", "ema_cross", "rsi", "bollinger", "atr_breakout")


def history_seed(*, instrument, days: int, data_dir: Path, candle_file: str, until: datetime) -> dict:
    """Write `days` of history ending at `candle_file`'s first bar; derivatives run on to `until`. Return counts."""
    from django.db import connection

    started = time.perf_counter()
    # One generator per part: the trades and prices stay the same whatever span the derivatives cover.
    prices_rng, derivatives_rng, trading_rng = (np.random.default_rng([SEED, part]) for part in range(3))
    bench_bars = pd.read_csv(data_dir / candle_file, usecols=["open_time_ms", "open", "close"])
    end_ms = int(bench_bars["open_time_ms"].iloc[0])
    bars, sources = history_bars(data_dir, end_ms - days * 86_400_000, end_ms,
                                 float(bench_bars["open"].iloc[0]), prices_rng)
    parts = {"prices": time.perf_counter() - started}
    counts = {"candles_15m": _candles_write(instrument, bars)}
    parts["candles"] = time.perf_counter() - started - sum(parts.values())
    # The derivatives follow the history's closes, then the bench's own bars up to the last cycle.
    later = bench_bars[bench_bars["open_time_ms"] < _ms(until)]
    closes = (np.concatenate([bars["open_time_ms"].to_numpy() + STEP_MS, later["open_time_ms"].to_numpy() + STEP_MS]),
              np.concatenate([bars["close"].to_numpy(float), later["close"].to_numpy(float)]))
    counts.update(_derivatives_write(instrument, closes, int(bars["open_time_ms"].iloc[0]), _ms(until), data_dir,
                                     derivatives_rng))
    parts["derivatives"] = time.perf_counter() - started - sum(parts.values())
    book = _trading_book(instrument, bars, trading_rng)
    parts["trading rows made"] = time.perf_counter() - started - sum(parts.values())
    counts.update(book.write())
    parts["trading rows inserted"] = time.perf_counter() - started - sum(parts.values())
    counts.update(book.audit_write())
    parts["audit appends"] = time.perf_counter() - started - sum(parts.values())
    counts = {name: int(count) for name, count in counts.items()}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE " + ", ".join(
            connection.ops.quote_name(t) for t in connection.introspection.table_names() if not t.startswith("django")))
        cursor.fetchall()
    return {"days": days, "from": _dt(end_ms - days * 86_400_000).isoformat(), "to": _dt(end_ms).isoformat(),
            "prices": sources, "seconds": round(time.perf_counter() - started, 1),
            "seconds_by_part": {name: round(t, 1) for name, t in parts.items()}, "rows": counts,
            "balance_usdt": str(book.balance.quantize(Decimal("0.01"))),
            "winning_trades_fraction": round(book.wins / max(1, counts["positions"]), 3)}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _recorded(data_dir: Path, interval: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Return the recorded BTCUSDT bars of `interval` in [start, end): USD-M where recorded, else spot."""
    frames = []
    for market in ("usdm", "spot"):
        for path in sorted(data_dir.glob(f"binance_{market}_BTCUSDT_{interval}_*.csv.gz")):
            frame = pd.read_csv(path)
            frames.append(frame[(frame["open_time_ms"] >= start_ms) & (frame["open_time_ms"] < end_ms)])
    if not frames:
        return pd.DataFrame(columns=["open_time_ms", "open", "high", "low", "close", "volume"])
    return pd.concat(frames).drop_duplicates("open_time_ms", keep="first").sort_values("open_time_ms")


def history_bars(data_dir: Path, start_ms: int, end_ms: int, last_open: float, rng) -> tuple[pd.DataFrame, str]:
    """Return 15m bars on [start, end): recorded where they exist, bridged between recorded closes elsewhere."""
    slots = np.arange(start_ms, end_ms, STEP_MS, dtype="int64")
    real = _recorded(data_dir, "15m", start_ms, end_ms).set_index("open_time_ms")
    hourly = _recorded(data_dir, "1h", start_ms, end_ms)
    # Anchors: each recorded 15m close at its bar, each recorded hourly close at the hour's last quarter,
    # and the warm-up's first open as the close of the last slot.
    anchors = pd.Series(hourly["close"].to_numpy(float), index=hourly["open_time_ms"].to_numpy() + 3 * STEP_MS)
    anchors = pd.concat([anchors, real["close"].astype(float)])
    anchors = anchors[~anchors.index.duplicated(keep="last")]
    anchors[slots[-1]] = last_open
    anchors = anchors[anchors.index.isin(slots)].sort_index()
    at = np.searchsorted(slots, anchors.index.to_numpy())
    log_anchor = np.log(anchors.to_numpy())
    walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, BAR_SIGMA, len(slots) - 1))])
    k = np.arange(len(slots))
    right = np.clip(np.searchsorted(at, k), 0, len(at) - 1)
    left = np.clip(right - (at[right] > k), 0, len(at) - 1)
    span = np.maximum(at[right] - at[left], 1)
    share = np.where(at[right] > at[left], (k - at[left]) / span, 0.0)
    base = log_anchor[left] + (log_anchor[right] - log_anchor[left]) * share
    bridge = (walk - walk[at[left]]) - (walk[at[right]] - walk[at[left]]) * share
    close = np.round(np.exp(base + np.where(k < at[0], walk - walk[at[0]], bridge)), 1)
    open_ = np.round(np.concatenate([[close[0]], close[:-1]]), 1)
    wick = np.abs(rng.normal(0.0, 0.0012, (2, len(slots))))
    frame = pd.DataFrame({"open_time_ms": slots, "open": open_, "close": close,
                          "high": np.round(np.maximum(open_, close) * (1 + wick[0]), 1),
                          "low": np.round(np.minimum(open_, close) * (1 - wick[1]), 1),
                          "volume": np.round(rng.lognormal(np.log(900.0), 0.5, len(slots)), 3)})
    frame = frame.set_index("open_time_ms")
    recorded = frame.index.isin(real.index)
    for column in ("open", "high", "low", "close", "volume"):
        frame.loc[recorded, column] = real.loc[frame.index[recorded], column].astype(float).to_numpy()
    frame = frame.reset_index()
    frame["high"] = frame[["open", "high", "low", "close"]].max(axis=1)
    frame["low"] = frame[["open", "high", "low", "close"]].min(axis=1)
    taken = anchors.index.isin(hourly["open_time_ms"].to_numpy() + 3 * STEP_MS).sum()
    sources = (f"{recorded.sum()} of {len(slots)} 15m bars recorded (BTCUSDT 15m of MARKET_DATA_DIR, USD-M "
               f"else spot); the other {len(slots) - recorded.sum()} a seeded Brownian bridge of the log price "
               f"through {taken} recorded 1h closes and the warm-up's first open")
    return frame, sources


def _candles_write(instrument, bars: pd.DataFrame) -> int:
    from market.ingest import candles_upsert

    frame = bars[["open_time_ms", "open", "high", "low", "close", "volume"]].copy()
    frame["quote_volume"] = (frame["volume"] * frame["close"]).round(2)
    frame["taker_buy_base"] = (frame["volume"] * 0.5).round(3)
    for column in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base"):
        frame[column] = frame[column].map(lambda v: f"{v:.12g}")
    total = 0
    for at in range(0, len(frame), 20_000):
        total += candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame.iloc[at:at + 20_000])
    return total


def _derivatives_write(instrument, closes: tuple[np.ndarray, np.ndarray], start_ms: int, until_ms: int,
                       data_dir: Path, rng) -> dict:
    """Store funding (8h), open interest and mark/index (5m, 1h) and CVD (5m) from `start_ms` to `until_ms`."""
    from market.ingest import derivatives_upsert

    counts = {}

    def write(kind: str, period: str, frame: pd.DataFrame) -> None:
        total = 0
        for at in range(0, len(frame), 50_000):
            total += derivatives_upsert(instrument_id=instrument.pk, kind=kind, period=period,
                                        frame=frame.iloc[at:at + 50_000])
        counts[f"derivatives_{kind}_{period}"] = total

    first_funding = -(-start_ms // EIGHT_HOURS_MS) * EIGHT_HOURS_MS
    funding_ts = np.arange(first_funding, until_ms, EIGHT_HOURS_MS, dtype="int64")
    # Mean-reverting around Binance's base rate (0.01 % per 8 h), as funding is: a walk would drift into
    # long "extreme" stretches that refuse the rule's entries for days.
    rates, noise = np.empty(len(funding_ts)), rng.normal(0.0, 0.00001, len(funding_ts))
    level = 0.0
    for k, step in enumerate(noise):
        level = 0.95 * level + step
        rates[k] = round(0.0001 + level, 8)
    for path in sorted(data_dir.glob("binance_usdm_BTCUSDT_funding_*.csv.gz")):
        recorded = pd.read_csv(path)
        by_slot = dict(zip(recorded["funding_time_ms"] // EIGHT_HOURS_MS * EIGHT_HOURS_MS, recorded["funding_rate"]))
        rates = np.array([by_slot.get(ts, rate) for ts, rate in zip(funding_ts, rates)])
    write("funding", "8h", pd.DataFrame({"ts_ms": funding_ts, "funding_rate": [f"{r:.8f}" for r in rates]}))
    five = np.arange(-(-start_ms // FIVE_MS) * FIVE_MS, until_ms, FIVE_MS, dtype="int64")
    price = np.interp(five, *closes)
    open_interest = 85_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, len(five))).clip(-0.4, 0.4))
    basis = price * rng.normal(0.0003, 0.0002, len(five))
    returns = np.diff(np.log(price), prepend=np.log(price[0]))
    cvd = np.cumsum(returns * 40_000.0 + rng.normal(0.0, 25.0, len(five)))
    for period, every in (("5m", 1), ("1h", 12)):
        pick = slice(None) if every == 1 else (five % HOUR_MS == 0)
        write("open_interest", period, pd.DataFrame({
            "ts_ms": five[pick], "open_interest": [f"{v:.3f}" for v in open_interest[pick]],
            "open_interest_value": [f"{v:.2f}" for v in open_interest[pick] * price[pick]]}))
        write("mark_index", period, pd.DataFrame({
            "ts_ms": five[pick], "mark_price": [f"{v:.1f}" for v in price[pick] + basis[pick]],
            "index_price": [f"{v:.1f}" for v in price[pick]],
            "basis": [f"{v:.1f}" for v in np.round(price[pick] + basis[pick], 1) - np.round(price[pick], 1)]}))
    write("cvd", "5m", pd.DataFrame({"ts_ms": five, "cvd": [f"{v:.3f}" for v in cvd]}))
    return counts


def _atr(bars: pd.DataFrame, period: int = 14) -> np.ndarray:
    high, low, close = (bars[c].to_numpy(float) for c in ("high", "low", "close"))
    previous = np.concatenate([[close[0]], close[:-1]])
    true_range = np.maximum(high - low, np.maximum(np.abs(high - previous), np.abs(low - previous)))
    return pd.Series(true_range).rolling(period, min_periods=1).mean().to_numpy()


def _exit_of(side: str, k: int, stop: float, target: float, high: np.ndarray,
             low: np.ndarray) -> tuple[int, str] | None:
    """Return (bar, leg) of the first later bar whose range reaches the stop (first) or the target, or None."""
    ahead_low, ahead_high = low[k + 1:], high[k + 1:]
    stopped = ahead_low <= stop if side == "LONG" else ahead_high >= stop
    reached = ahead_high >= target if side == "LONG" else ahead_low <= target
    hits = [(int(np.argmax(m)), leg) for m, leg in ((stopped, "sl"), (reached, "tp1")) if m.any()]
    if not hits:
        return None
    at, leg = min(hits)
    return k + 1 + at, leg


def _d(value: float, quantum: Decimal = TICK) -> Decimal:
    return Decimal(repr(float(value))).quantize(quantum)


def _trading_book(instrument, bars: pd.DataFrame, rng) -> "_Book":
    """Return the decisions, snapshots, flows, trades, equity points and audit records of every history bar."""
    from decisions.selectors import trading_config_get
    from execution.services import account_ensure

    config, account = trading_config_get(), account_ensure(name="paper")
    book = _Book(instrument, account, config)
    high, low, close = (bars[c].to_numpy(float) for c in ("high", "low", "close"))
    atr, opens = _atr(bars), bars["open_time_ms"].to_numpy()
    draws = rng.random((len(bars), 4))
    position = None
    for k in range(len(bars)):
        now = _dt(int(opens[k]) + STEP_MS)
        if position is not None and position["exit_bar"] == k:
            book.exit(position, now, _dt(int(opens[k])))
            position = None
        voted = k >= 14 and draws[k, 0] < NON_FLAT_SHARE
        side = ("LONG" if draws[k, 1] < 0.5 else "SHORT") if voted else "FLAT"
        exit_ = None
        if voted and position is None:
            outcomes = {s: _exit_of(s, k, *_levels(s, close[k], atr[k]), high, low) for s in ("LONG", "SHORT")}
            winners = [s for s, o in outcomes.items() if o is not None and o[1] == "tp1"]
            if len(winners) == 1:
                other = "SHORT" if winners[0] == "LONG" else "LONG"
                side = winners[0] if draws[k, 2] < WINNING_SIDE_SHARE else other
            exit_ = outcomes[side]
        outcome = ("flat" if not voted else "blocked" if position is not None
                   else "skipped" if exit_ is None else "executed")
        decision = book.decide(k, now, side, outcome, close[k], atr[k], draws[k])
        if outcome == "executed":
            position = book.enter(decision, now, exit_, close[k], atr[k])
        book.equity(now, position, close[k])
    return book


def _levels(side: str, close: float, atr: float) -> tuple[float, float]:
    sign = 1 if side == "LONG" else -1
    return close - sign * atr, close + sign * 1.5 * atr


class _Book:
    """The rows of the history in the making, with their primary keys given here (the tables start empty)."""

    def __init__(self, instrument, account, config):
        from execution.models import Order

        self.instrument, self.account, self.config = instrument, account, config
        self.balance = account.starting_balance_usdt
        self.rows = {name: [] for name in ("snapshots", "flows", "decisions", "positions", "orders", "fills",
                                           "equity_points")}
        self.audit: list[tuple] = []
        self.wins = 0
        self.order_has_position = any(f.name == "position" for f in Order._meta.concrete_fields)

    def decide(self, k: int, now: datetime, side: str, outcome: str, close: float, atr: float, draw) -> "Decision":
        from analytics.models import Flow, Snapshot
        from decisions.models import Decision

        pk = k + 1
        trend = ("up", "down", "range")[int(draw[3] * 3)]
        self.rows["snapshots"].append(Snapshot(
            pk=pk, instrument=self.instrument, timeframe="15m", as_of=now, close=_d(close), atr=float(atr),
            trend=trend, momentum=trend, features=_features(now, close, atr, trend, draw)))
        self.rows["flows"].append(Flow(pk=pk, instrument=self.instrument, as_of=now, crowd_bias=round(draw[1] - 0.5, 3),
                                       trap_index=round(draw[2] / 2, 3), global_risk_score=round(draw[3] * 40, 1),
                                       warnings=[], parts=_flow_parts(close, draw), inputs=_flow_inputs(now)))
        voted, sign = side != "FLAT", 1 if side == "LONG" else -1
        stop, target = (_d(v) for v in _levels(side, close, atr)) if voted else (None, None)
        confidence = round(0.5 + 0.4 * draw[2], 3) if voted else None
        reason = {"flat": "no strategy signal: first: no strategy voted",
                  "blocked": "blocked by one_position: a position is already open on this instrument",
                  "skipped": "skipped: no exit before the history's end",
                  "executed": f"{side}: first: {side.lower()} from rules, the first to vote"}[outcome]
        decision = Decision(
            pk=pk, instrument=self.instrument, timeframe="15m", as_of=now, snapshot_id=pk, action=side,
            mode=self.config.mode, outcome=outcome, entry_price=_d(close) if voted else None, stop_price=stop,
            target_price=target, take_profits=[{"price": str(target), "share": "1"}] if voted else [],
            reason=reason, rationale=_rationale(side, close, atr), gates=_gates(outcome),
            config_version=self.config.version, entry_zone_low=_d(close - 0.25 * atr) if voted else None,
            entry_zone_high=_d(close + 0.25 * atr) if voted else None,
            risk_level=("low", "medium", "high")[int(draw[1] * 3)], confidence=confidence,
            success_probability=confidence, probability_source="calibrated: 500 closed trades" if voted else "",
            edge_long=round(0.5 + sign * 0.1 * draw[2], 3) if voted else None,
            edge_short=round(0.5 - sign * 0.1 * draw[2], 3) if voted else None,
            score_parts=_score_parts(side, close, atr, draw), expires_at=now + timedelta(minutes=240))
        if outcome == "executed":     # sized from the balance, as the live sizing does (risk, then leverage)
            quantity = min(self.balance * RISK_FRACTION / _d(atr, Decimal("0.01")), self.balance * LEVERAGE / _d(close))
            decision.quantity = (quantity / STEP_SIZE).to_integral_value(rounding=ROUND_DOWN) * STEP_SIZE
        self.rows["decisions"].append(decision)
        self.audit += [("decision", "engine", f"decision:{pk}", _decision_body(decision, self.instrument), now),
                       ("gate", "engine", f"decision:{pk}", {"gates": decision.gates, "blocked_by": (
                           "one_position" if outcome == "blocked" else None)}, now)]
        return decision

    def _order(self, *, decision_id: int, intent: str, leg: str, side: str, quantity: Decimal, price: Decimal,
               now: datetime, reduce_only: bool, position_id: int | None = None):
        from execution.models import Fill, Order
        from execution.oms import client_order_id

        cid = client_order_id(intent, leg)
        pk = len(self.rows["orders"]) + 1
        order = Order(pk=pk, account=self.account, instrument=self.instrument, decision_id=decision_id,
                      client_order_id=cid, intent_id=intent, leg=leg, side=side, type="market", quantity=quantity,
                      reduce_only=reduce_only, status="filled", acknowledged=True, filled_quantity=quantity,
                      average_price=price, exchange_order_id=f"paper-{cid}", config_version=self.config.version,
                      created_at=now, updated_at=now)
        if self.order_has_position and position_id is not None:
            order.position_id = position_id
        fee = (quantity * price * TAKER_FEE).quantize(Decimal("1e-10"))
        self.rows["orders"].append(order)
        self.rows["fills"].append(Fill(pk=len(self.rows["fills"]) + 1, order_id=pk, trade_id=f"paper-{cid}", ts=now,
                                       price=price, quantity=quantity, fee_usdt=fee, liquidity="taker"))
        subject = f"order:{cid}"
        self.audit += [
            ("order", "engine", subject, {"action": "created", "decision": decision_id, "intent_id": intent, "leg": leg,
                                          "side": side, "type": "market", "quantity": quantity, "price": None,
                                          "trigger_price": None, "reduce_only": reduce_only,
                                          "config_version": self.config.version}, now),
            ("order", "engine", subject, {"action": "report", "status": "filled", "exchange_order_id": f"paper-{cid}",
                                          "filled_quantity": quantity, "average_price": price, "reject_reason": "",
                                          "trade_ids": [f"paper-{cid}"]}, now)]
        return order, fee

    def enter(self, decision, now: datetime, exit_: tuple[int, str], close: float, atr: float) -> dict:
        from execution.models import Position
        from execution.oms import make_intent_id

        sign = 1 if decision.action == "LONG" else -1
        price = (_d(close) * (1 + sign * SLIP)).quantize(TICK)
        quantity = decision.quantity
        pk = len(self.rows["positions"]) + 1
        intent = make_intent_id(self.account.name, self.instrument.pk, "15m", decision.as_of.isoformat())
        _, fee = self._order(decision_id=decision.pk, intent=intent, leg="entry", side="buy" if sign > 0 else "sell",
                             quantity=quantity, price=price, now=now, reduce_only=False, position_id=pk)
        self.balance -= fee
        position = Position(
            pk=pk, account=self.account, instrument=self.instrument, decision_id=decision.pk, side=decision.action,
            status="closed", quantity=Decimal(0), entry_price=price, stop_price=decision.stop_price,
            target_price=decision.target_price, initial_quantity=quantity,
            take_profits=[{"price": str(decision.target_price), "share": "1", "filled": exit_[1] == "tp1"}],
            trail_distance=_d(1.5 * atr), opened_at=now, fees_usdt=fee, realized_pnl_usdt=-fee,
            liquidation_price=(price * (1 - sign / LEVERAGE + sign * Decimal("0.004"))).quantize(TICK))
        self.rows["positions"].append(position)
        self.audit.append(("order", "engine", f"order:{self.rows['orders'][-1].client_order_id}", {
            "action": "position_opened", "position": pk, "quantity": quantity, "entry_price": price}, now))
        return {"row": position, "exit_bar": exit_[0], "leg": exit_[1], "sign": sign}

    def exit(self, position: dict, now: datetime, bar_open: datetime) -> None:
        from execution.oms import make_intent_id

        row, sign, leg = position["row"], position["sign"], position["leg"]
        price = (row.stop_price * (1 - sign * SLIP)).quantize(TICK) if leg == "sl" else row.target_price
        order, fee = self._order(decision_id=row.decision_id, intent=make_intent_id("exit", row.pk), leg=leg,
                                 side="sell" if sign > 0 else "buy", quantity=row.initial_quantity, price=price,
                                 now=now, reduce_only=True)
        gross = (price - row.entry_price) * row.initial_quantity * sign
        row.fees_usdt += fee
        row.realized_pnl_usdt += gross - fee
        row.exit_price, row.exit_reason = price, "stop" if leg == "sl" else "target"
        row.closed_at, row.exits_checked_until = now, bar_open
        self.balance += gross - fee
        self.wins += row.realized_pnl_usdt > 0
        self.audit.append(("order", "engine", f"order:{order.client_order_id}", {
            "action": "position_closed", "position": row.pk, "leg": leg, "quantity": row.initial_quantity,
            "exit_price": price, "realized_pnl_usdt": row.realized_pnl_usdt}, now))

    def equity(self, now: datetime, position: dict | None, close: float) -> None:
        from execution.models import EquityPoint

        unrealized = Decimal(0)
        if position is not None:
            row = position["row"]
            unrealized = ((_d(close) - row.entry_price) * row.initial_quantity * position["sign"]
                          ).quantize(Decimal("0.00000001"))
        self.rows["equity_points"].append(EquityPoint(account=self.account, ts=now, balance_usdt=self.balance,
                                                      unrealized_pnl_usdt=unrealized,
                                                      equity_usdt=self.balance + unrealized))

    def write(self) -> dict:
        """Insert every row in batches, append the audit records in chain order, and return the counts."""
        from django.db import transaction
        from django.db.models import F

        from analytics.models import Flow, Snapshot
        from decisions.models import Decision
        from execution.models import Account, EquityPoint, Fill, Order, Position

        models = {"snapshots": Snapshot, "flows": Flow, "decisions": Decision, "positions": Position,
                  "orders": Order, "fills": Fill, "equity_points": EquityPoint}
        counts = {}
        with transaction.atomic():
            for name, model in models.items():
                model.objects.bulk_create(self.rows[name], batch_size=BATCH)
                counts[name] = len(self.rows[name])
            # created_at is auto_now_add (the wall clock at insert): the live rows carry their cycle's time.
            for model in (Snapshot, Flow, Decision):
                model.objects.update(created_at=F("as_of"))
            Account.objects.filter(pk=self.account.pk).update(balance_usdt=self.balance)
        return counts

    def audit_write(self) -> dict:
        """Append the audit records in chain order through the chain's own append; return their count."""
        from django.db import transaction

        from decisions.audit_services import _extend
        from decisions.models import AuditRecord

        # audit_extend's body, with each record's own time (audit_extend stamps one time on all), 5,000 at a time.
        for at in range(0, len(self.audit), 5000):
            with transaction.atomic():
                _extend(self.audit[at:at + 5000])
        return {"audit_records": AuditRecord.objects.count()}


# Row contents: the keys and about the sizes of the live rows (a year of them sizes the tables and
# the buffer pool as the bot's would); the values follow the bar, none of them is read back by the cycle.
def _features(now: datetime, close: float, atr: float, trend: str, draw) -> dict:
    c, a, u = float(close), float(atr), [float(x) for x in draw]
    levels = {s: {"high": round(c + a * (2 + u[1]), 1), "low": round(c - a * (2 + u[2]), 1),
                  "prev_high": round(c + a * 3, 1), "prev_low": round(c - a * 3, 1)} for s in ("asia", "eu", "us")}
    return {
        "as_of_ms": _ms(now), "close": c, "atr": a, "atr_fraction": a / c, "trend": trend,
        "structure_labels": ["HH", "HL", "LH", "LL"], "last_swing_high": round(c + 2 * a, 1),
        "last_swing_low": round(c - 2 * a, 1), "break_of_structure": "", "momentum": trend,
        "roc_atr": 4 * u[1] - 2, "range_expansion": 0.5 + u[2], "volume_ratio": 0.5 + u[3],
        "atr_percentile": 100 * u[0],
        "realised_vol_annual": 0.2 + 0.3 * u[1], "rsi": 30 + 40 * u[2], "ema_fast": c - a * (u[1] - 0.5),
        "ema_slow": c - a * (u[2] - 0.5), "macd": 200 * u[1] - 100, "macd_signal": 200 * u[2] - 100,
        "macd_histogram": 200 * (u[1] - u[2]), "bollinger_upper": c + 2 * a, "bollinger_lower": c - 2 * a,
        "bollinger_percent_b": u[3], "bollinger_bandwidth": 4 * a / c, "volume_zscore": 2 * u[0] - 1,
        "sessions_active": ["us"], "session_levels": levels, "minutes_to_next_session": 15.0 * int(20 * u[1]),
        "fvg_below": {"bottom": round(c - 3 * a, 1), "top": round(c - 2.5 * a, 1), "size_atr": 0.5 + u[2],
                      "age_bars": int(10 * u[3]), "state": "open"},
        "fvg_above": None, "fvg_open_below": int(5 * u[1]), "fvg_open_above": int(5 * u[2]),
        "last_break_of_structure": "bullish" if u[1] > 0.5 else "bearish", "last_break_level": round(c + a, 1),
        "last_break_bars_ago": int(20 * u[2]), "mtf_trends": {"15m": trend, "30m": trend, "1h": "range", "4h": "up",
                                                              "1d": "up", "1w": "up"},
        "mtf_raw": u[1] - 0.5, "mtf_score": u[1] - 0.5, "mtf_state": "neither", "structure_trends": {"5m": None},
        "volume_confirmed": u[3] > 0.5}


def _flow_parts(close: float, draw) -> dict:
    u = [float(x) for x in draw]

    def output(value: float, scale: float, names: tuple[str, ...]) -> dict:
        weight = round(1 / len(names), 2)
        return {"value": value, "scale": scale, "parts": [
            {"name": n, "value": round(u[k % 4] - 0.5, 4), "weight": weight,
             "contribution": round((u[k % 4] - 0.5) * weight, 4), "note": ""} for k, n in enumerate(names)]}

    return {
        "crowd_bias": output(u[1] - 0.5, 1.0, ("funding_level", "funding_z", "basis", "oi_build", "sentiment")),
        "trap_index": output(u[2] / 2, 1.0, ("crowding", "cvd_divergence_against_crowd", "magnet_against_crowd",
                                             "oi_fuel", "etf_flow_against_crowd")),
        "global_risk_score": output(40 * u[3], 100.0, ("funding_extremity", "oi_spike", "trap_index", "etf_outflow",
                                                       "liquidation_proximity", "sentiment_extremity")),
        "context": {"derivatives": {
            "oi_change_pct": [["1h", u[0] - 0.5], ["4h", 2 * u[1] - 1], ["24h", 4 * u[2] - 2]], "oi_trend_pct": u[1],
            "oi_spike_pct": u[2], "funding_rate": 0.0001, "funding_annualised_pct": 10.95, "funding_z": u[3] - 0.5,
            "funding_extreme": "", "basis_bps": 3.0, "cvd_source": "samples", "cvd_trend": u[0] - 0.5,
            "price_change_pct": u[1] - 0.5, "cvd_divergence": "", "cvd_divergence_strength": 0.0, "notes": []},
            "etf": {"latest_day": None, "latest_by_fund": [], "total_1d_usd": None, "total_5d_usd": None,
                    "total_20d_usd": None, "streak_days": 0, "surprise_z": None, "notes": ["etf_flows: no rows"]},
            "liquidations": {"price": float(close), "nearest_above": None, "nearest_below": None, "weight_above": 0.0,
                             "weight_below": 0.0, "magnet": "", "magnet_strength": 0.0,
                             "notes": ["liquidation_zones: no valid zones"]},
            "sentiment": {"score": None, "readings": [], "news_score": None,
                          "notes": ["sentiment: no valid readings and no news score"]}},
        "notes": ["etf_flows: missing", "liquidation_zones: missing", "sentiment: missing"]}


def _flow_inputs(now: datetime) -> list[dict]:
    latest = _ms(now)
    counts = {"funding": 91, "open_interest": 361, "basis": 1, "cvd": 61, "candles": 25}
    return [{"name": name, "count": counts.get(name, 0), "latest_ms": latest if name in counts else None,
             "status": "ok" if name in counts else "missing"}
            for name in ("funding", "open_interest", "basis", "cvd", "candles", "etf_flows", "liquidation_zones",
                         "sentiment")]


def _rationale(side: str, close: float, atr: float) -> list[str]:
    c, a = float(close), float(atr)
    lines = ["structure range (HH LL LH HL)", "momentum up (ROC +1.20 ATR, range x0.95, volume x1.02)",
             f"ATR {a:.2f} ({100 * a / c:.3f}% of price)",
             f"strategy ema_cross: no fresh cross: EMA 21 crossed above EMA 55 30 bars ago, more than 10 "
             f"(fast {c:.0f} > slow {c - a:.0f}, gap 0.85 ATR)",
             "strategy rsi: RSI 14 at 55.0 (was 52.1): no turn back across 30 or 70",
             f"strategy bollinger: close {c:.0f} inside the bands {c - 2 * a:.0f}..{c + 2 * a:.0f} with no re-entry",
             f"strategy atr_breakout: close {c:.0f} inside {c - 3 * a:.0f}..{c + 3 * a:.0f} (20-bar range "
             f"{c - 2.5 * a:.0f}..{c + 2.5 * a:.0f} +/- 0.5 x ATR {a:.3f})",
             "aggregation: first: " + ("no strategy voted" if side == "FLAT" else f"{side.lower()} from rules"),
             "flow: crowd bias +0.05, trap 0.10, risk 12/100 (no warnings)"]
    if side != "FLAT":
        lines += ["stop 1.000 ATR from entry", f"edge: edge_{side.lower()} 0.55 at or above threshold 0.00",
                  f"fusion: {side}: technical 0.65 x 0.60 + model 0.35 x edge 0.55 = confidence 0.583",
                  "success probability 58% (calibrated on 500 closed trades)", "risk level medium"]
    return lines


def _gates(outcome: str) -> list[dict]:
    return [{"name": name, "verdict": "block" if outcome == "blocked" and name == "one_position" else "allow",
             "reason": ("a position is already open on this instrument" if outcome == "blocked" and
                        name == "one_position" else f"{name.replace('_', ' ')} within its limit")}
            for name in GATES]


def _score_parts(side: str, close: float, atr: float, draw) -> dict:
    voter = STRATEGIES[int(float(draw[3]) * len(STRATEGIES))] if side != "FLAT" else None
    sign = {"LONG": 1, "SHORT": -1, "FLAT": 0}[side]
    votes = [{"strategy": s, "side": sign if s == voter else 0, "strength": 0.7 if s == voter else 0.0,
              "reason": f"{s}: close {float(close):.0f}, ATR {float(atr):.2f}: "
                        + ("votes" if s == voter else "no signal on this bar")} for s in STRATEGIES]
    return {"votes": votes, "aggregate": {"method": "first", "side": sign, "strength": 0.7 if voter else 0.0,
                                          "reason": f"first: {voter or 'no strategy'} voted"},
            "edge": {"long": 0.5, "short": 0.5, "threshold": 0.0, "components": {
                "fvg": 0.5, "risk_reward": 0.6, "news": 0.5, "whale": 0.5, "onchain": 0.5, "obi": 0.5, "flow": 0.5}},
            "fusion": {"technical": 0.6, "model": 0.55, "technical_weight": 0.65, "model_weight": 0.35}}


def _decision_body(decision, instrument) -> dict:
    return {"instrument": str(instrument), "timeframe": decision.timeframe, "as_of": decision.as_of,
            "action": decision.action, "mode": decision.mode, "outcome": decision.outcome, "reason": decision.reason,
            "entry_price": decision.entry_price, "stop_price": decision.stop_price,
            "target_price": decision.target_price, "take_profits": decision.take_profits,
            "quantity": decision.quantity, "rationale": decision.rationale,
            "config_version": decision.config_version}
