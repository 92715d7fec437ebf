"""The drift replay triggers stops on the stored mark klines where the live paper venue does (MARK_PRICE)."""
from datetime import timedelta
from decimal import Decimal as D

from decisions.models import Mode
from decisions.selectors import trading_config_get
from execution import drift
from execution.backtest.engine import backtest_run
from execution.backtest.runs import marks_load
from execution.drift import drift_report_build
from execution.engine import cycle_run
from execution.models import Account, Position
from market.ingest import derivatives_upsert
from market.models import DerivativesKind
from tests.execution.backtest.test_backtest_mark_trigger import _first_close, _mark_frame
from tests.market_fixtures import DAY_BARS


def test_drift_replay_of_a_day_with_mark_klines_replays_them_and_finds_no_gap(btc_15m, monkeypatch):
    # On this day the first stop fills a bar later on the mark than on the last price
    # (test_backtest_mark_trigger, where backtest_run given the marks orders and fills as live does).
    # The stops fill at their level either way, so the PnL alone would not show a replay without them:
    # the replay's run is checked to be given the stored marks, and to find no gap.
    replayed = []
    monkeypatch.setattr(drift, "backtest_run", lambda **kwargs: replayed.append(kwargs) or backtest_run(**kwargs))
    instrument, frame = btc_15m
    derivatives_upsert(instrument_id=instrument.pk, kind=DerivativesKind.MARK_INDEX, period="5m",
                       frame=_mark_frame(frame))
    config = trading_config_get()
    config.mode, config.edge_threshold, config.stop_working_type = Mode.ON, 0.5, "MARK_PRICE"
    config.save()
    first = _first_close(frame)
    last = first + timedelta(minutes=15 * (DAY_BARS - 1))
    for k in range(DAY_BARS):
        cycle_run(now=first + timedelta(minutes=15 * k), decide=True)
    assert Position.objects.filter(exit_reason="stop").exists()

    report = drift_report_build(account=Account.objects.get(name="paper"), start=first, end=last, now=last)

    symbol, = replayed[0]["symbols"]
    stored = marks_load(instrument=instrument, since=first - timedelta(hours=8), until=last + timedelta(hours=8))
    assert symbol.marks is not None and set(symbol.marks.by_period) == set(stored.by_period) == {"5m"}
    times, marks = symbol.marks.by_period["5m"]
    assert times.tolist() == stored.by_period["5m"][0].tolist() and marks == stored.by_period["5m"][1]
    summary = report.summary
    assert summary["decisions"]["different"] == summary["decisions"]["live_only"] == 0
    assert summary["decisions"]["backtest_only"] == 0 and summary["decisions"]["same"] == DAY_BARS
    assert summary["trades"]["live only"] == summary["trades"]["backtest only"] == 0
    assert summary["trades"]["both"] == Position.objects.count() > 0
    assert D(summary["gap_usdt"]) == 0 and report.slippage_bps == 0
