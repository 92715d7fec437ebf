"""The live cycle's execution side: what an entry, an exit and a quiet cycle cost in queries, and that each
query removed kept its answer (exits, fills, positions, balances, audit chain)."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from decisions.audit_services import audit_batched, audit_verify
from decisions.models import AuditRecord, Decision
from execution import engine
from execution.brokers.base import ExecutionReport, FillReport
from execution.brokers.paper import LadderExit
from execution.engine import cycle_run
from execution.entries import entries_to_sync, entry_position_sync
from execution.liquidation import Liquidation
from execution.models import Account, EquityPoint, Fill, Order, Position
from execution.oms import OrderIntent, OrderRejected, make_intent_id
from execution.orders import order_apply_report, order_create_pending
from execution.paper_venue import PaperVenue, _closed_bars, paper_funding_apply
from execution.selectors import closes_remembered, last_close
from execution.services import position_open, position_reduce, positions_check_exits
from market.models import Candle
from market.services import instrument_ensure
from tests.execution.live_cycle_fixtures import market  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)       # a 15m boundary, hours from a funding time
M1, M15 = timedelta(minutes=1), timedelta(minutes=15)


def _bar(instrument, timeframe, open_time, o="60000", h="60100", low="59900", c="60050"):
    Candle.objects.create(instrument=instrument, timeframe=timeframe, open_time=open_time, open=D(o), high=D(h),
                          low=D(low), close=D(c), volume=D("10"))


def _decision(instrument, **overrides) -> Decision:
    base = dict(instrument=instrument, timeframe="15m", as_of=NOW, action="LONG", mode="ON", outcome="executed",
                entry_price=D("60000"), stop_price=D("59000"), target_price=D("61000"), quantity=D("0.010"),
                take_profits=[{"price": "61000", "share": "1"}], reason="test")
    return Decision.objects.create(**(base | overrides))


def _entered(account, instrument, config, decision: Decision | None = None) -> Position:
    return position_open(decision=decision or _decision(instrument), account=account,
                         broker=PaperVenue(account, config), now=NOW, reference_price=D("60000"), config=config)


def _statements(queries: CaptureQueriesContext) -> int:
    """Return the queries but savepoints: the test's own transaction turns every outermost block into one."""
    return sum(1 for q in queries.captured_queries
               if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")))


def _savepoints(queries: CaptureQueriesContext) -> int:
    return sum(1 for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT"))


# A paper entry, one transaction: order, the venue's answer, fills, order state, position, balance and the
# three records under one head lock.
ENTRY_QUERIES = (1              # order row (a second worker's copy is refused by its client id)
                 + 1            # the paper venue looks the client id up (a duplicate is refused)
                 + 1 + 1        # fills in one insert (they fill the whole order: no read back), order row
                 + 1 + 1        # the entry orders with their fills (summed in Python), the decision's
                                # (or an adopted) position locked
                 + 1 + 1 + 1    # position row with its liquidation price, entry fee off the balance, entry orders marked
                 + 3)           # "created", "report" and "position_opened" together


def test_position_open_market_entry_books_order_fills_and_position_in_the_pinned_queries(market):
    account, instrument, config = market
    decision = _decision(instrument)

    with CaptureQueriesContext(connection) as queries:
        position = _entered(account, instrument, config, decision)

    assert _statements(queries) == ENTRY_QUERIES
    # Savepoints only where a conflict is caught and the entry goes on: the order's client id and the
    # position's one-per-instrument key (the third is the entry's own block inside the test's transaction).
    assert _savepoints(queries) == 3
    order = Order.objects.get(leg="entry")
    fill = order.fills.get()
    assert (order.status, order.filled_quantity, order.average_price) == ("filled", fill.quantity, fill.price)
    position.refresh_from_db()
    assert (position.quantity, position.entry_price, position.fees_usdt) == (fill.quantity, fill.price,
                                                                            fill.fee_usdt)
    assert position.liquidation_price is not None and position.liquidation_price < position.entry_price
    account.refresh_from_db()
    assert account.balance_usdt == D("10000") - fill.fee_usdt
    actions = [r.body["action"] for r in AuditRecord.objects.order_by("seq")]
    assert actions == ["created", "report", "position_opened"] and audit_verify().ok


# An exit, one transaction: order, fill, order state, position, balance, three records under one head lock.
EXIT_QUERIES = (1               # the order row (a second worker's copy is refused by its client id)
                + 1 + 1         # fills in one insert (the whole order: no read back), order row
                + 1 + 1         # position row, balance
                + 3)            # "created", "report" and "position_closed" together


def test_position_reduce_books_the_exit_and_its_three_records_in_one_transaction(market):
    account, instrument, config = market
    position = Position.objects.select_related("instrument", "account").get(pk=_entered(account, instrument,
                                                                                          config).pk)
    before = AuditRecord.objects.count()

    with CaptureQueriesContext(connection) as queries:
        closed = position_reduce(position=position, broker=PaperVenue(account, config), now=NOW + M15,
                                 exit_=LadderExit("tp1", "target", D("61000"), position.quantity), config=config)

    assert _statements(queries) == EXIT_QUERIES
    assert _savepoints(queries) == 2     # the exit's own block (in the test's transaction), the client id
    exit_order = Order.objects.get(leg="tp1")
    assert (exit_order.status, exit_order.decision_id) == ("filled", position.decision_id)
    assert (closed.status, closed.exit_reason, closed.exit_price) == ("closed", "target", exit_order.average_price)
    records = list(AuditRecord.objects.filter(seq__gt=before).order_by("seq"))
    assert [r.body["action"] for r in records] == ["created", "report", "position_closed"]
    assert {r.subject for r in records} == {f"order:{exit_order.client_order_id}"}
    assert audit_verify().ok


def test_position_reduce_same_leg_twice_sends_one_exit_order(market):
    account, instrument, config = market
    position = _entered(account, instrument, config)
    exit_ = LadderExit("sl", "stop", D("59000"), position.quantity)

    first = position_reduce(position=position, broker=PaperVenue(account, config), now=NOW + M15, exit_=exit_,
                            config=config)
    again = Position.objects.get(pk=position.pk)
    again.account, again.instrument = account, instrument
    second = position_reduce(position=again, broker=PaperVenue(account, config), now=NOW + M15, exit_=exit_,
                             config=config)

    assert Order.objects.filter(leg="sl").count() == 1 and Fill.objects.filter(order__leg="sl").count() == 1
    assert first.status == second.status == "closed" and audit_verify().ok


def test_position_reduce_failing_after_the_order_leaves_no_order_fill_or_record(market, monkeypatch):
    account, instrument, config = market
    position = _entered(account, instrument, config)
    records = AuditRecord.objects.count()
    monkeypatch.setattr("execution.services.position_payload", _boom)

    with pytest.raises(RuntimeError):
        position_reduce(position=position, broker=PaperVenue(account, config), now=NOW + M15,
                        exit_=LadderExit("sl", "stop", D("59000"), position.quantity), config=config)

    assert not Order.objects.filter(leg="sl").exists() and not Fill.objects.filter(order__leg="sl").exists()
    assert AuditRecord.objects.count() == records
    assert Position.objects.get(pk=position.pk).status == "open" and audit_verify().ok


def _boom(position):
    raise RuntimeError("after the writes, before the commit")


def test_positions_check_exits_target_bar_closes_the_position_in_the_pinned_queries(market):
    account, instrument, config = market
    position = _entered(account, instrument, config)
    _bar(instrument, "15m", NOW, h="61500", c="61400")

    with CaptureQueriesContext(connection) as queries:
        closed = positions_check_exits(account=account, instrument=instrument, broker=PaperVenue(account, config),
                                       now=NOW + M15, config=config)

    # open position, the bars since (every timeframe in one read), their mark klines, then the exit
    assert _statements(queries) == 3 + EXIT_QUERIES
    assert closed.pk == position.pk and closed.exit_price == D("61000")


def test_cycle_with_an_open_position_and_no_exit_reads_in_the_pinned_queries(market):
    account, instrument, config = market
    _entered(account, instrument, config)
    _bar(instrument, "15m", NOW)

    with CaptureQueriesContext(connection) as queries:
        result = cycle_run(now=NOW + M15, decide=False)

    # config, account, instruments; resting limits, unbooked entries; open position, bars, marks, its
    # progress; the header price; open positions, the balance again, equity point (the balance was not
    # written by the cycle: not read again before the decision)
    assert _statements(queries) == 3 + 2 + 4 + 1 + 3
    position = Position.objects.get()
    assert (position.status, position.exits_checked_until) == ("open", NOW)
    point = EquityPoint.objects.get(ts=NOW + M15)
    account.refresh_from_db()
    assert point.balance_usdt == account.balance_usdt
    assert point.unrealized_pnl_usdt == (D("60050") - position.entry_price) * position.quantity
    assert result.equity_usdt == str(point.equity_usdt)


def test_cycle_without_positions_reads_in_the_pinned_queries(market):
    _account, instrument, _config = market
    _bar(instrument, "15m", NOW)

    with CaptureQueriesContext(connection) as queries:
        cycle_run(now=NOW + M15, decide=False)

    # config, account, instruments; resting limits, unbooked entries; open position; header price;
    # open positions; the balance again; equity point
    assert _statements(queries) == 3 + 2 + 1 + 1 + 1 + 1 + 1


def test_cycle_equity_point_takes_the_balance_a_web_process_wrote_during_the_cycle(market, monkeypatch):
    account, instrument, _config = market
    _bar(instrument, "15m", NOW)
    real = engine.positions_open

    def closed_by_the_kill_switch_meanwhile(of_account, **kwargs):
        # Another process books a close's realised PnL after the cycle read the account.
        Account.objects.filter(pk=of_account.pk).update(balance_usdt=D("12345.67"))
        return real(of_account, **kwargs)

    monkeypatch.setattr(engine, "positions_open", closed_by_the_kill_switch_meanwhile)
    cycle_run(now=NOW + M15, decide=False)

    assert EquityPoint.objects.get(account=account, ts=NOW + M15).balance_usdt == D("12345.67")


def test_cycle_exit_balance_reaches_the_decision_and_the_equity_point(market, monkeypatch):
    account, instrument, config = market
    _entered(account, instrument, config)
    _bar(instrument, "15m", NOW, h="61500", c="61400")
    seen = []
    monkeypatch.setattr(engine, "decision_run", lambda **kw: seen.append(kw["account"].balance_usdt))

    result = cycle_run(now=NOW + M15, decide=True)

    account.refresh_from_db()
    assert result.exits == 1 and account.balance_usdt > D("10000")      # the target booked a profit
    assert seen == [account.balance_usdt]
    assert EquityPoint.objects.get(ts=NOW + M15).balance_usdt == account.balance_usdt


def test_cycle_entry_fee_reaches_the_equity_point(market, monkeypatch):
    account, instrument, config = market
    _bar(instrument, "15m", NOW)

    def enter(**kw):
        return position_open(decision=_decision(instrument), account=kw["account"], now=kw["now"],
                             broker=PaperVenue(kw["account"], config), reference_price=D("60000"), config=config)
    monkeypatch.setattr(engine, "decision_run", enter)

    cycle_run(now=NOW + M15, decide=True)

    account.refresh_from_db()
    assert account.balance_usdt == D("10000") - Fill.objects.get().fee_usdt
    assert EquityPoint.objects.get(ts=NOW + M15).balance_usdt == account.balance_usdt


# The header price: the decision timeframe's bar closing at `now` answers alone (a 1m bar closing then
# too is a tie, the same close); otherwise the freshest bar of every stored timeframe.
@pytest.mark.parametrize(("now", "stored", "expected", "reads"), [
    (NOW, ("1m", "15m"), (D("60000"), NOW), 1),             # 15m bar closes at now: nothing is fresher
    (NOW, ("1m",), (D("60000"), NOW), 1 + 1 + 1),           # no 15m bar: the hint misses, then all timeframes
    (NOW + 3 * M1, ("1m", "15m"), (D("60003"), NOW + 3 * M1), 1 + 2),   # not a 15m boundary: all timeframes
])
def test_last_close_with_the_cycle_timeframe_equals_the_freshest_bar(market, now, stored, expected, reads):
    _account, instrument, _config = market
    if "15m" in stored:
        _bar(instrument, "15m", NOW - M15, c="60000")
    for k in range(-5, 3):      # the 1m bar opened at NOW + k closes at NOW + k + 1 at 60 001 + k
        _bar(instrument, "1m", NOW + k * M1, c=str(60001 + k))

    with closes_remembered(timeframe="15m"), CaptureQueriesContext(connection) as queries:
        found = last_close(instrument=instrument, now=now)

    assert found == expected == last_close(instrument=instrument, now=now)     # the uncached answer
    assert len(queries.captured_queries) == reads


def test_closed_bars_one_read_returns_the_finest_closed_timeframe(market):
    _account, instrument, _config = market
    for k in range(4):
        _bar(instrument, "5m", NOW + k * 5 * M1, c=str(60000 + k))
    _bar(instrument, "15m", NOW)

    with CaptureQueriesContext(connection) as queries:
        step, rows = _closed_bars(instrument, NOW, NOW + M15, strictly_after=False, fields=("open_time", "close"))

    assert len(queries.captured_queries) == 1
    # The fourth 5m bar closes at 12:20, after `now`: left out; the 15m bar is coarser.
    assert (step, rows) == (300_000, [(NOW, D("60000")), (NOW + 5 * M1, D("60001")), (NOW + 10 * M1, D("60002"))])
    assert _closed_bars(instrument, NOW, NOW + 10 * M1, strictly_after=False, fields=("close",)) == (
        300_000, [(D("60000"),), (D("60001"),)])
    assert _closed_bars(instrument, NOW, NOW + 4 * M1, strictly_after=False, fields=("close",)) == (0, [])


def test_paper_funding_apply_before_the_first_funding_time_reads_nothing(market):
    account, instrument, config = market
    _entered(account, instrument, config)
    positions = list(Position.objects.select_related("instrument"))

    with CaptureQueriesContext(connection) as queries:
        booked = paper_funding_apply(account=account, now=NOW + 3 * M15, positions=positions)

    assert booked == [] and len(queries.captured_queries) == 0


def test_entries_to_sync_one_read_finds_the_unbooked_entries_only(market):
    account, instrument, config = market
    booked = _entered(account, instrument, config).decision
    unbooked = _decision(instrument, as_of=NOW + M15)
    order = Order.objects.create(account=account, instrument=instrument, decision=unbooked, client_order_id="u-1",
                                 intent_id="u", leg="entry", side="buy", type="market", quantity=D("0.010"),
                                 status="filled", filled_quantity=D("0.010"), created_at=NOW, updated_at=NOW)
    grown = _decision(instrument, as_of=NOW + 2 * M15)
    Position.objects.create(account=account, instrument=instrument, decision=grown, side="LONG", status="closed",
                            quantity=D("0"), initial_quantity=D("0.010"), entry_price=D("60000"),
                            stop_price=D("59000"), target_price=D("61000"), opened_at=NOW)
    Order.objects.create(account=account, instrument=instrument, decision=grown, client_order_id="g-1",
                         intent_id="g", leg="entry", side="buy", type="market", quantity=D("0.020"),
                         status="filled", filled_quantity=D("0.020"), created_at=NOW, updated_at=NOW)

    with CaptureQueriesContext(connection) as queries:
        decisions = entries_to_sync(account)

    # one grouped read, then one decision read per entry to book; the closed trade is done
    assert [d.pk for d in decisions] == [order.decision_id] != [booked.pk]
    assert len(queries.captured_queries) == 2
    Position.objects.filter(decision=booked).update(quantity=D("0.001"), initial_quantity=D("0.001"))
    assert sorted(d.pk for d in entries_to_sync(account)) == sorted([booked.pk, unbooked.pk])


def _fresh_order(account, instrument, config, tag="x") -> Order:
    intent = OrderIntent(make_intent_id(tag), "entry", instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_create_pending(account=account, instrument=instrument, intent=intent, decision=None, now=NOW,
                                    config=config)
    return order


def _report(order, *trades) -> ExecutionReport:
    fills = tuple(FillReport(order.client_order_id, trade, int(NOW.timestamp() * 1000), D(price), D(qty),
                             D("0.1"), "taker") for trade, price, qty in trades)
    return ExecutionReport(order.client_order_id, "filled", fills, "x-1")


def test_order_apply_report_repeated_books_each_fill_once(market):
    account, instrument, config = market
    order = _fresh_order(account, instrument, config)
    report = _report(order, ("t1", "60000", "0.004"), ("t2", "60010", "0.006"))

    order_apply_report(order=order, report=report, now=NOW)
    again = order_apply_report(order=Order.objects.get(pk=order.pk), report=report, now=NOW)

    assert sorted(Fill.objects.values_list("trade_id", flat=True)) == ["t1", "t2"]
    assert again.filled_quantity == D("0.010")
    assert again.average_price == (D("0.004") * 60000 + D("0.006") * 60010) / D("0.010")
    assert AuditRecord.objects.filter(body__action="report").count() == 2
    assert [r.body["trade_ids"] for r in AuditRecord.objects.filter(body__action="report").order_by("seq")] == [
        ["t1", "t2"], []]


def test_order_apply_report_fill_booked_elsewhere_first_is_not_booked_again(market):
    account, instrument, config = market
    order = _fresh_order(account, instrument, config)
    Fill.objects.create(order=order, trade_id="t1", ts=NOW, price=D("60000"), quantity=D("0.004"), fee_usdt=D("0.1"))

    applied = order_apply_report(order=order, report=_report(order, ("t1", "60000", "0.004"),
                                                             ("t2", "60010", "0.006")), now=NOW)

    assert Fill.objects.filter(order=order).count() == 2 and applied.filled_quantity == D("0.010")
    assert AuditRecord.objects.get(body__action="report").body["trade_ids"] == ["t2"]


def test_order_apply_report_fresh_order_books_its_fills_in_one_insert(market):
    account, instrument, config = market
    order = _fresh_order(account, instrument, config)

    with CaptureQueriesContext(connection) as queries:
        applied = order_apply_report(order=order, now=NOW,
                                     report=_report(order, ("t1", "60000", "0.004"), ("t2", "60010", "0.006")))

    # one insert; the fills fill the whole order, so no read back; the order row; the "report" record
    assert _statements(queries) == 1 + 1 + 3
    stored = Order.objects.get(pk=order.pk)
    assert (stored.filled_quantity, stored.average_price) == (D("0.010"), (D("0.004") * 60000 + D("0.006") * 60010)
                                                              / D("0.010"))
    assert (applied.filled_quantity, applied.average_price) == (stored.filled_quantity, stored.average_price)


def test_order_apply_report_fresh_order_partly_filled_reads_its_fills_back(market):
    account, instrument, config = market
    order = _fresh_order(account, instrument, config)
    report = ExecutionReport(order.client_order_id, "partially_filled",
                             _report(order, ("t1", "60000", "0.004")).fills, "x-1")

    with CaptureQueriesContext(connection) as queries:
        applied = order_apply_report(order=order, report=report, now=NOW)

    # part of the order: another fill of it may be booked already, so the fills are read back
    assert _statements(queries) == 1 + 1 + 1 + 3
    assert (applied.status, applied.filled_quantity, applied.average_price) == ("partially_filled", D("0.004"),
                                                                               D("60000"))


def test_position_open_paper_entry_failing_after_the_writes_leaves_no_order_fill_position_or_record(market,
                                                                                                     monkeypatch):
    account, instrument, config = market
    decision = _decision(instrument)
    monkeypatch.setattr("execution.services.position_payload", _boom)

    with pytest.raises(RuntimeError):
        _entered(account, instrument, config, decision)

    assert not Order.objects.exists() and not Fill.objects.exists() and not Position.objects.exists()
    assert not AuditRecord.objects.exists() and audit_verify().ok
    assert Account.objects.get(pk=account.pk).balance_usdt == D("10000")


def test_position_open_paper_entry_refused_keeps_the_rejected_order_with_its_records(market, monkeypatch):
    account, instrument, config = market
    decision = _decision(instrument)

    def refuse(self, intent, **kwargs):
        raise OrderRejected("-2019 Margin is insufficient")
    monkeypatch.setattr("execution.brokers.paper.PaperBroker.submit", refuse)

    with pytest.raises(OrderRejected, match="-2019"):
        _entered(account, instrument, config, decision)

    order = Order.objects.get(decision=decision)
    assert (order.status, order.reject_reason) == ("rejected", "-2019 Margin is insufficient")
    assert not Position.objects.exists() and not Fill.objects.exists()
    assert [r.body["action"] for r in AuditRecord.objects.order_by("seq")] == ["created", "report"]
    assert audit_verify().ok


def test_order_create_pending_with_the_cycle_config_does_not_read_it(market):
    account, instrument, config = market

    with CaptureQueriesContext(connection) as queries:
        order = _fresh_order(account, instrument, config)

    assert _statements(queries) == 1 + 3 and order.config_version == config.version


def test_audit_batched_appends_the_queue_in_order_under_one_head_lock():
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with audit_batched() as batch:
            for k in range(3):
                batch.add(kind="order", actor="engine", subject=f"order:{k}", body={"k": k}, now=NOW + k * M1)

    assert len(queries.captured_queries) == 3
    records = list(AuditRecord.objects.order_by("seq"))
    assert [(r.subject, r.ts) for r in records] == [(f"order:{k}", NOW + k * M1) for k in range(3)]
    assert audit_verify().ok


def test_audit_batched_exception_drops_the_queue():
    with pytest.raises(ValueError), transaction.atomic(), audit_batched() as batch:
        batch.add(kind="order", actor="engine", subject="order:1", body={}, now=NOW)
        raise ValueError("rolled back")

    assert not AuditRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_audit_batched_outside_a_transaction_refuses():
    with pytest.raises(transaction.TransactionManagementError, match="needs an open transaction"):
        with audit_batched():
            pass


def _entry_order(account, instrument, decision, leg, minute, quantity="0.010", status="partially_filled") -> Order:
    return Order.objects.create(account=account, instrument=instrument, decision=decision, intent_id="i",
                                client_order_id=f"c-{leg}", leg=leg, side="buy", type="limit_maker",
                                quantity=D(quantity), price=D("59990"), status=status,
                                created_at=NOW + minute * M1, updated_at=NOW + minute * M1)


def test_entry_position_sync_builds_from_every_entry_fill_and_names_the_last_entry_order(market):
    account, instrument, _config = market
    decision = _decision(instrument)
    first = _entry_order(account, instrument, decision, "entry", 0)
    Fill.objects.create(order=first, trade_id="a", ts=NOW + M1, price=D("59990"), quantity=D("0.004"),
                        fee_usdt=D("0.1"))
    reprice = _entry_order(account, instrument, decision, "entry1", 2, quantity="0.006", status="accepted")

    opened, change = entry_position_sync(decision=decision, account=account, now=NOW + 3 * M1,
                                         liquidation_of=lambda p: Liquidation(D("1"), D("2")))
    Fill.objects.create(order=reprice, trade_id="b", ts=NOW + 4 * M1, price=D("59980"), quantity=D("0.006"),
                        fee_usdt=D("0.2"))
    grown, change_again = entry_position_sync(decision=decision, account=account, now=NOW + 5 * M1,
                                              liquidation_of=lambda p: Liquidation(p.quantity, p.quantity * 100))

    assert (change, opened.quantity, opened.entry_price, opened.fees_usdt) == ("opened", D("0.004"), D("59990"),
                                                                              D("0.1"))
    grown.refresh_from_db()
    assert change_again == "grown"
    assert (grown.quantity, grown.fees_usdt, grown.liquidation_price, grown.margin_usdt) == (
        D("0.010"), D("0.3"), D("0.010"), D("1"))
    assert grown.entry_price == (D("0.004") * 59990 + D("0.006") * 59980) / D("0.010")
    records = AuditRecord.objects.order_by("seq")
    assert [(r.subject, r.body["action"]) for r in records] == [("order:c-entry1", "position_opened"),
                                                                ("order:c-entry1", "position_grown")]
    account.refresh_from_db()
    assert account.balance_usdt == D("10000") - D("0.3")


def test_entry_position_sync_without_fills_writes_nothing(market):
    account, instrument, _config = market
    decision = _decision(instrument)
    _entry_order(account, instrument, decision, "entry", 0, status="accepted")

    assert entry_position_sync(decision=decision, account=account, now=NOW) == (None, "")
    assert not Position.objects.exists() and not AuditRecord.objects.exists()


def test_entry_position_sync_own_position_found_leaves_an_adoptable_one_alone(market):
    account, instrument, _config = market
    decision = _decision(instrument)
    first = _entry_order(account, instrument, decision, "entry", 0, status="filled")
    Fill.objects.create(order=first, trade_id="a", ts=NOW, price=D("59990"), quantity=D("0.010"), fee_usdt=D("0.1"))
    levels = dict(account=account, instrument=instrument, side="LONG", quantity=D("0.010"),
                  initial_quantity=D("0.010"), entry_price=D("59990"), stop_price=D("59000"),
                  target_price=D("61000"), opened_at=NOW + M1)
    Position.objects.create(decision=decision, status="closed", **levels)
    orphan = Position.objects.create(decision=None, status="open", open_key=instrument.pk, **levels)

    assert entry_position_sync(decision=decision, account=account, now=NOW + 2 * M1)[1] == ""
    orphan.refresh_from_db()
    assert orphan.decision_id is None and orphan.stop_price == D("59000")


def test_positions_open_compiled_equals_the_orm_read_with_instruments(market):
    from execution.selectors import positions_open
    from market.models import Instrument

    account, instrument, config = market
    eth = instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")
    Position.objects.create(account=account, instrument=eth, side="SHORT", status="open", open_key=eth.pk,
                            quantity=D("1.5"), entry_price=D("3000.25"), stop_price=D("3100"), target_price=D("2900"),
                            opened_at=NOW,
                            take_profits=[{"price": "2900", "share": "1"}])
    _entered(account, instrument, config)
    Position.objects.create(account=account, instrument=eth, side="LONG", status="closed", quantity=D("0"),
                            entry_price=D("2950"), stop_price=D("2900"), target_price=D("3000"),
                            opened_at=NOW - M15)

    for _ in range(2):      # the first call learns the shape, the second binds it
        compiled = positions_open(account)
        plain = list(Position.objects.filter(account=account, status="open").select_related("instrument"))
        assert [p.pk for p in compiled] == [p.pk for p in plain]
        for mine, theirs in zip(compiled, plain):
            assert {f.attname: getattr(mine, f.attname) for f in Position._meta.concrete_fields} == \
                {f.attname: getattr(theirs, f.attname) for f in Position._meta.concrete_fields}
            assert {f.attname: getattr(mine.instrument, f.attname) for f in Instrument._meta.concrete_fields} == \
                {f.attname: getattr(theirs.instrument, f.attname) for f in Instrument._meta.concrete_fields}
            assert not mine._state.adding and mine.instrument.pk == mine.instrument_id


def test_audit_batched_joined_block_that_raises_drops_only_its_own_records():
    with transaction.atomic(), audit_batched() as batch:
        batch.add(kind="decision", actor="engine", subject="decision:1", body={}, now=NOW)
        with pytest.raises(ValueError), transaction.atomic(), audit_batched(join=batch) as joined:
            assert joined is batch
            joined.add(kind="order", actor="engine", subject="order:1", body={"action": "created"}, now=NOW)
            raise ValueError("the entry failed")
        batch.add(kind="gate", actor="engine", subject="decision:1", body={}, now=NOW)

    assert [r.kind for r in AuditRecord.objects.order_by("seq")] == ["decision", "gate"]
    assert audit_verify().ok


def _row(order: Order) -> dict:
    return {f.attname: getattr(order, f.attname) for f in Order._meta.concrete_fields}


@pytest.mark.parametrize("status, trades", [("filled", (("t1", "60000", "0.010"),)), ("rejected", ())])
def test_order_apply_report_on_an_order_created_here_writes_what_it_set_and_the_row_equals_the_instance(
        market, status, trades):
    account, instrument, config = market
    with transaction.atomic(), audit_batched() as audit:
        order = _fresh_order(account, instrument, config)
        report = ExecutionReport(order.client_order_id, status, _report(order, *trades).fills, "x-1",
                                 reason="-2019 Margin is insufficient" if status == "rejected" else "")
        with CaptureQueriesContext(connection) as queries:
            applied = order_apply_report(order=order, report=report, now=NOW + M1, audit=audit, created_here=True)

    update = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE"))
    assert "`client_order_id`" not in update and '"client_order_id"' not in update     # not the whole row
    assert _row(Order.objects.get(pk=order.pk)) == _row(applied)
    assert applied.status == status and applied.updated_at == NOW + M1
