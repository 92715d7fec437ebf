"""Backtests page: operators start runs, walk-forwards and sweeps; everyone reads progress and reports."""
import json
import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.urls import reverse

from execution.backtest.jobs import backtest_submit
from execution.backtest.report import MAX_CANDLES, fmt
from execution.backtest.sweeps import sweep_submit
from execution.backtest.walkforward import walkforward_submit
from execution.models import BacktestRun
from market.models import Candle
from tests.dashboard.conftest import user_with_role
from tests.execution.backtest.jobs_fixtures import NOW, close_of, eth_15m, market  # noqa: F401
from tests.market_fixtures import WARMUP_BARS

STEP = timedelta(minutes=15)
START_URLS = ("dashboard:backtest-start", "dashboard:backtest-walkforward", "dashboard:backtest-sweep")


def form_data(frame, **overrides) -> dict:
    start = close_of(frame, WARMUP_BARS)
    data = {"symbols": "BTCUSDT", "timeframe": "15m", "start": start.strftime("%Y-%m-%dT%H:%M"),
            "end": (start + STEP * 7).strftime("%Y-%m-%dT%H:%M"), "starting_equity": "10000",
            "parameters": "edge_threshold=0.55", "grid": "edge_threshold=0.5|0.6", "train_days": "0.5",
            "test_days": "0.25", "objective": "sharpe", "metric": "net_pnl_usdt"}
    return data | overrides


@pytest.fixture
def finished_run(market, django_capture_on_commit_callbacks):  # noqa: F811
    """A run over half a day of real bars, done."""
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)
    with django_capture_on_commit_callbacks(execute=True):
        run = backtest_submit(symbols=["BTCUSDT"], timeframe="15m", start=start, end=start + STEP * 47,
                              starting_equity=D("10000"), parameters=None, actor="olga", now=NOW)
    run.refresh_from_db()
    assert run.status == "done" and run.trades
    return run


@pytest.mark.parametrize("url_name", START_URLS)
def test_start_anonymous_is_sent_to_log_in(client, market, url_name):  # noqa: F811
    response = client.post(reverse(url_name), form_data(market[1]))

    assert response.status_code == 302 and "/login/" in response["Location"] and "/admin/" not in response["Location"]
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize("url_name", START_URLS)
def test_start_viewer_is_refused(viewer_client, market, url_name):  # noqa: F811
    response = viewer_client.post(reverse(url_name), form_data(market[1]))

    assert response.status_code == 403
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize(("url_name", "kind", "rows"), [
    ("dashboard:backtest-start", "run", 1),
    ("dashboard:backtest-walkforward", "walkforward", 0),
    ("dashboard:backtest-sweep", "sweep", 3),
])
def test_start_operator_queues_the_job_and_lands_on_its_page(operator_client, market,  # noqa: F811
                                                             url_name, kind, rows):
    data = form_data(market[1])
    if kind == "walkforward":   # 0.5 + 0.25 days of bars after the start
        data["end"] = (close_of(market[1], WARMUP_BARS) + STEP * 71).strftime("%Y-%m-%dT%H:%M")
        rows = 4               # the parent, one fold, its two candidates

    response = operator_client.post(reverse(url_name), data)

    run = BacktestRun.objects.get(parent__isnull=True)
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:backtest", args=[run.pk])
    assert (run.kind, run.status, run.requested_by) == (kind, "queued", "operator")
    assert BacktestRun.objects.count() == rows
    page = operator_client.get(response["Location"]).content.decode()
    assert f'data-progress-run="{run.pk}"' in page and "queued" in page and "dashboard/backtest.js" in page


def test_start_operator_bad_parameter_shows_the_field_error_and_stores_nothing(operator_client, market):  # noqa: F811
    response = operator_client.post(reverse("dashboard:backtest-start"),
                                    form_data(market[1], parameters="risk_per_trade_fraction=0.2\nturbo=1"))

    page = response.content.decode()
    assert response.status_code == 400 and 'data-field-error="parameters"' in page
    assert "risk_per_trade_fraction: Ensure this value is less than or equal to 0.05." in page
    assert "turbo: not an admin-editable trading parameter" in page
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize(("url_name", "change", "field", "message"), [
    ("dashboard:backtest-start", {"parameters": "edge_threshold"}, "parameters", "line 1: write name=value"),
    ("dashboard:backtest-start", {"symbols": "DOGEUSDT"}, "symbols", "unknown symbol DOGEUSDT"),
    ("dashboard:backtest-sweep", {"grid": "edge_threshold=0.5|7"}, "grid", "edge_threshold=7: Ensure"),
    ("dashboard:backtest-walkforward", {"test_days": "0.01"}, "test_days", "is not a whole number of 15m bars"),
])
def test_start_bad_input_names_the_field(operator_client, market, url_name, change, field, message):  # noqa: F811
    response = operator_client.post(reverse(url_name), form_data(market[1], **change))

    page = response.content.decode()
    assert response.status_code == 400 and f'data-field-error="{field}"' in page and message in page
    assert not BacktestRun.objects.exists()


def test_list_viewer_reads_without_the_forms_operator_gets_them(client, finished_run, django_user_model):
    client.force_login(user_with_role(django_user_model, "viewer", None))
    viewer_page = client.get(reverse("dashboard:backtests")).content.decode()
    client.force_login(user_with_role(django_user_model, "op", "operator"))
    operator_page = client.get(reverse("dashboard:backtests")).content.decode()

    assert f'data-run="{finished_run.pk}"' in viewer_page
    assert fmt(finished_run.metrics["net_pnl_usdt"], "usdt") in viewer_page
    forms = [f'<form method="post" action="{reverse(name)}">' for name in START_URLS]
    assert not any(form in viewer_page for form in forms)
    assert all(form in operator_page for form in forms)


def chart_json(page: str) -> dict:
    found = re.search(r'<script id="backtest-chart" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def stored_candles(run: BacktestRun, instrument) -> list[dict]:
    """Return the stored bars of `instrument` the run decided on (opened one bar before each close), as charted."""
    rows = Candle.objects.filter(instrument=instrument, timeframe=run.timeframe, open_time__gte=run.start - STEP,
                                 open_time__lte=run.end - STEP).order_by("open_time")
    return [{"time": int(c.open_time.timestamp()), "open": float(c.open), "high": float(c.high), "low": float(c.low),
             "close": float(c.close)} for c in rows]


def exit_texts(markers: list[dict]) -> list[str]:
    return sorted(m["text"] for m in markers if m["text"])


def exit_texts_of(trades: list[dict]) -> list[str]:
    return sorted(f"{D(t['pnl_usdt']):+.2f}" for t in trades)


def test_report_page_shows_the_metrics_and_the_chart_data(viewer_client, finished_run):
    response = viewer_client.get(reverse("dashboard:backtest", args=[finished_run.pk]))

    page = response.content.decode()
    m = finished_run.metrics
    assert response.status_code == 200
    for key, kind in (("net_pnl_usdt", "usdt"), ("win_rate", "pct"), ("max_drawdown_fraction", "pct"),
                      ("trade_count", "int"), ("buy_and_hold_return_fraction", "pct")):
        assert re.search(rf'data-metric="{key}"><th>[^<]+</th><td class="num">{re.escape(fmt(m[key], kind))}</td>',
                         page), key
    assert page.count('<span class="action action-') == len(finished_run.trades)
    data = chart_json(page)
    start_s = int(finished_run.start.timestamp())
    # The curve opens at the starting equity one bar before the first close and ends at the final equity.
    assert data["equity"][0] == [start_s - 900, 10000.0]
    assert data["equity"][-1] == [int(finished_run.end.timestamp()), round(float(finished_run.final_equity_usdt), 2)]
    assert len(data["equity"]) == len(finished_run.equity) + 1 and not data["downsampled"]
    assert all(p <= 0 for _, p in data["drawdown"])
    assert min(p for _, p in data["drawdown"]) == pytest.approx(-100 * m["max_drawdown_fraction"], abs=1e-3)
    # The candles decided on, and an entry and an exit marker per trade on them.
    [btc] = data["symbols"]
    assert btc["symbol"] == "BTCUSDT" and btc["per_bar"] == 1
    assert btc["candles"] == stored_candles(finished_run, finished_run.instrument)
    times = [c["time"] for c in btc["candles"]]
    assert len(times) == 48 <= MAX_CANDLES and times[0] == start_s - 900
    assert len(btc["markers"]) == 2 * len(finished_run.trades) and {m["time"] for m in btc["markers"]} <= set(times)
    first = finished_run.trades[0]
    assert btc["markers"][0]["shape"] == ("arrowUp" if first["side"] == "LONG" else "arrowDown")
    assert exit_texts(btc["markers"]) == exit_texts_of(finished_run.trades)
    assert "lightweight-charts.standalone.production.js" in page
    assert "data-chart-symbol" not in page       # one symbol: no picker


@pytest.fixture
def two_symbol_run(market, eth_15m, django_capture_on_commit_callbacks):  # noqa: F811
    """A run over BTCUSDT and ETHUSDT on one account, done, with trades in both."""
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)
    with django_capture_on_commit_callbacks(execute=True):
        run = backtest_submit(symbols=["BTCUSDT", "ETHUSDT"], timeframe="15m", start=start, end=start + STEP * 47,
                              starting_equity=D("10000"), parameters=None, actor="olga", now=NOW)
    run.refresh_from_db()
    assert run.status == "done" and {t["symbol"] for t in run.trades} == {"BTCUSDT", "ETHUSDT"}
    return run, {"BTCUSDT": instrument, "ETHUSDT": eth_15m}


def on_bar(ms: int, times: list[int]) -> int:
    """Return the open (s) of the bar among `times` that holds the moment `ms`."""
    return max(t for t in times if t <= ms // 1000)


def assert_symbol_chart(chart: dict, run: BacktestRun, instrument) -> None:
    """Assert one symbol's chart: its own stored candles, an entry and an exit marker on them per trade of it."""
    trades = [t for t in run.trades if t["symbol"] == instrument.exchange_symbol]
    times = [c["time"] for c in chart["candles"]]
    assert chart["symbol"] == instrument.exchange_symbol and chart["per_bar"] == 1
    assert chart["candles"] == stored_candles(run, instrument) and len(times) == 48
    assert exit_texts(chart["markers"]) == exit_texts_of(trades)
    assert sorted(m["time"] for m in chart["markers"]) == sorted(
        on_bar(t[key], times) for t in trades for key in ("entry_ms", "exit_ms"))


@pytest.mark.parametrize("url_name", ["dashboard:backtest", "dashboard:backtest-export"])
def test_report_of_several_symbols_charts_each_symbol_with_its_trades(viewer_client, two_symbol_run, url_name):
    run, instruments = two_symbol_run

    page = viewer_client.get(reverse(url_name, args=[run.pk])).content.decode()

    data = chart_json(page)
    assert [c["symbol"] for c in data["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    for chart in data["symbols"]:
        assert_symbol_chart(chart, run, instruments[chart["symbol"]])
    btc, eth = data["symbols"]
    assert btc["candles"][0]["close"] > 10 * eth["candles"][0]["close"]     # two markets, not one twice
    # The picker offers each symbol by its index in the data, which backtest.js draws on change.
    assert re.findall(r'<option value="(\d+)">(\w+)</option>', page) == [("0", "BTCUSDT"), ("1", "ETHUSDT")]
    assert "<select data-chart-symbol" in page


def test_progress_json_gives_the_run_and_its_children(viewer_client, finished_run):
    body = viewer_client.get(reverse("dashboard:backtest-progress", args=[finished_run.pk])).json()

    assert body["run"] == {"run_id": finished_run.pk, "parent_id": None, "kind": "run", "label": "",
                           "status": "done", "bars_done": 48, "bars_total": 48, "pct": 100.0, "error": ""}
    assert body["children"] == []


def test_report_export_is_one_self_contained_file(viewer_client, finished_run):
    response = viewer_client.get(reverse("dashboard:backtest-export", args=[finished_run.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="backtest-{finished_run.pk}.html"'
    assert "<script src=" not in page and 'rel="stylesheet"' not in page and "/static/" not in page
    assert "LightweightCharts" in page and "createSeriesMarkers" in page and ".bt-progress" in page
    assert chart_json(page)["equity"][-1][1] == round(float(finished_run.final_equity_usdt), 2)


def test_report_export_of_an_unfinished_run_is_not_found(viewer_client, market):  # noqa: F811
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)
    run = backtest_submit(symbols=["BTCUSDT"], timeframe="15m", start=start, end=start + STEP * 3,
                          starting_equity=D("10000"), parameters=None, actor="olga", now=NOW)

    assert viewer_client.get(reverse("dashboard:backtest-export", args=[run.pk])).status_code == 404


def test_sweep_page_shows_the_results_best_first(viewer_client, market,  # noqa: F811
                                                 django_capture_on_commit_callbacks):
    instrument, frame = market
    start = close_of(frame, WARMUP_BARS)
    with django_capture_on_commit_callbacks(execute=True):
        parent = sweep_submit(symbols=["BTCUSDT"], timeframe="15m", start=start, end=start + STEP * 15,
                              starting_equity=D("10000"), parameters=None, grid={"edge_threshold": ["0.5", "0.95"]},
                              metric="net_pnl_usdt", actor="olga", now=NOW)
    parent.refresh_from_db()

    page = viewer_client.get(reverse("dashboard:backtest", args=[parent.pk])).content.decode()

    results = parent.metrics["results"]
    shown = re.findall(r'<tr data-result="(\d+)"', page)
    assert shown == [str(r["run_id"]) for r in results]
    values = re.findall(r'<td class="num" data-metric-value>([^<]+)</td>', page)
    assert values == [fmt(r["value"], "usdt") for r in results]
    assert "data-chart" not in page      # a sweep has no curve of its own


def test_walkforward_page_sets_in_sample_against_out_of_sample(viewer_client, market,  # noqa: F811
                                                               django_capture_on_commit_callbacks):
    instrument, frame = market
    start = close_of(frame, 99)
    with django_capture_on_commit_callbacks(execute=True):
        parent = walkforward_submit(symbols=["BTCUSDT"], timeframe="15m", start=start, end=start + STEP * 35,
                                    starting_equity=D("10000"), parameters={"history_bars": "100"},
                                    grid={"edge_threshold": ["0.5"]}, train_days="0.25", test_days="0.125",
                                    objective="net_pnl_usdt", actor="olga", now=NOW)
    parent.refresh_from_db()

    page = viewer_client.get(reverse("dashboard:backtest", args=[parent.pk])).content.decode()

    fold = parent.metrics["folds"][0]
    assert parent.status == "done" and 'data-fold="1"' in page
    oos = re.findall(r'<td class="num" data-oos>([^<]+)</td>', page)
    # The objective (net PnL) first, then return, Sharpe, drawdown and trades.
    assert oos == [fmt(fold["out_of_sample"][key], kind) for key, kind in (
        ("net_pnl_usdt", "usdt"), ("return_fraction", "pct"), ("sharpe", "ratio"), ("max_drawdown_fraction", "pct"),
        ("trade_count", "int"))]
    assert "In sample" in page and "Out of sample" in page and "data-efficiency" in page
    assert chart_json(page)["equity"][-1][1] == round(float(parent.final_equity_usdt), 2)
