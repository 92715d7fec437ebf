"""A trader's browser against daphne: log in, upload inputs, read the equity chart, approve and watch.

Headless Debian Chromium driven by Playwright; the server is daphne in its own process (the
in-memory channel layer, as one web process runs it) on this test's database.
"""
import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from execution.models import Position
from execution.services import account_ensure
from market.models import EtfFlow, ManualUpload
from market.manual.schemas import ETF_FLOWS_EXAMPLE
from tests.dashboard.conftest import user_with_role
from tests.approval_fixtures import pending_decision_create
from tests.dashboard.factories import EquityPointFactory, TradingConfigFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw"
EQUITY_BLUE = (37, 99, 235)   # static/dashboard/equity.js draws the equity line in #2563eb

# A row of the open-positions table, whichever data attribute the overview gives it.
POSITION_ROW = "[data-positions] tr[data-position], [data-positions] tr[data-position-id]"


def person(username: str, role: str | None):
    """Create a user with `role` (None: a viewer) who signs in through the dashboard's login page."""
    return user_with_role(get_user_model(), username, role)


def log_in(page, username: str) -> None:
    """Log in through the login form the way a person does, landing on the overview."""
    page.goto("/")
    assert "/login/" in page.url and "/admin/" not in page.url  # every page needs a login
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    refused = page.locator(".errornote")
    assert not refused.count(), f"login refused: {refused.inner_text()}"
    assert page.url.endswith("/")
    page.wait_for_selector('[data-conn="live"]')  # the websocket accepted the session


@pytest.fixture
def operator_page(browser_context):
    person("olga", "operator")
    page = browser_context.new_page()
    log_in(page, "olga")
    return page


def test_login_form_opens_overview_with_live_websocket(browser_context):
    TradingConfigFactory(mode="HYBRID")
    person("vera", None)
    page = browser_context.new_page()

    log_in(page, "vera")

    assert page.locator('[data-header="mode"] b').inner_text() == "HYBRID"
    assert page.locator("footer").inner_text().startswith("Signed in as vera")


def test_login_form_admits_a_viewer_who_is_not_staff(browser_context):
    user_with_role(get_user_model(), "nina", None)
    page = browser_context.new_page()

    log_in(page, "nina")

    assert page.locator("footer").inner_text().startswith("Signed in as nina")


def etf_file(flows: list[dict]) -> dict:
    return {"name": "flows.json", "mimeType": "application/json",
            "buffer": json.dumps({**ETF_FLOWS_EXAMPLE, "flows": flows}).encode()}


def test_etf_upload_good_file_shows_preview_then_confirm_saves_it(operator_page):
    page = operator_page
    page.goto("/inputs/")

    page.set_input_files("#etf-flows input[type=file]", etf_file(ETF_FLOWS_EXAMPLE["flows"]))
    page.click("#etf-flows button:has-text('Preview')")

    preview = page.locator('[data-preview="etf-flows"]')
    assert "nothing is saved until you confirm" in preview.inner_text()
    assert preview.locator("tbody tr").count() == 4
    assert not EtfFlow.objects.exists()
    preview.locator("button:has-text('Confirm and save')").click()
    page.wait_for_url("**/inputs/")
    upload = ManualUpload.objects.get()
    assert page.locator(".notice-success").inner_text() == (
        f"ETF flows: saved flows.json as upload #{upload.pk}: 4 new, 0 superseded, 0 unchanged rows.")
    assert EtfFlow.objects.count() == 4


def test_etf_upload_bad_file_shows_each_exact_error_and_saves_nothing(operator_page):
    page = operator_page
    page.goto("/inputs/")

    page.set_input_files("#etf-flows input[type=file]", etf_file([
        {"date": "2024-03-11", "fund": "IBIT", "net_flow_usd": "12k"},
        {"date": "2024-02-30", "fund": "FBTC", "net_flow_usd": 1}]))
    page.click("#etf-flows button:has-text('Preview')")

    problems = page.locator('[data-preview="etf-flows"] [data-problems]')
    assert problems.locator("strong").inner_text() == "2 problems: nothing was written."
    rows = [[cell.strip() for cell in row.split("\t")] for row in problems.locator("tbody tr").all_inner_texts()]
    assert rows == [["/flows/0/net_flow_usd", "expected a decimal number such as 1234.56 or \"1234.56\", got '12k'"],
                    ["/flows/1/date", "'2024-02-30' is not a calendar date"]]
    assert page.locator("button:has-text('Confirm and save')").count() == 0
    assert not ManualUpload.objects.exists() and not EtfFlow.objects.exists()


def blue_pixels(page) -> int:
    """Count the pixels of the chart's canvases drawn in the equity line's colour."""
    return page.evaluate("""([r, g, b]) => {
        let count = 0;
        for (const canvas of document.querySelectorAll('[data-chart] canvas')) {
            if (!canvas.width || !canvas.height) continue;
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 0; i < pixels.length; i += 4) {
                if (Math.abs(pixels[i] - r) < 24 && Math.abs(pixels[i + 1] - g) < 24
                    && Math.abs(pixels[i + 2] - b) < 24 && pixels[i + 3] > 200) count++;
            }
        }
        return count;
    }""", list(EQUITY_BLUE))


def test_equity_page_draws_the_equity_curve(browser_context):
    account = account_ensure(name="paper")
    start = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(days=2)
    for hour in range(48):  # a rise, a drawdown, a recovery
        balance = Decimal(10_000 + 40 * hour - (900 if 20 <= hour < 30 else 0))
        EquityPointFactory(account=account, ts=start + dt.timedelta(hours=hour), balance_usdt=balance,
                           equity_usdt=balance)
    person("vera", None)
    page = browser_context.new_page()
    log_in(page, "vera")

    page.goto("/equity/")

    page.wait_for_function("document.querySelectorAll('[data-chart] canvas').length > 0")
    page.wait_for_function("() => !/Loading/.test(document.querySelector('[data-status]').textContent)")
    page.wait_for_timeout(300)  # the chart paints on the next animation frame
    assert blue_pixels(page) > 100


def approvable_decision():
    """Store a HYBRID decision the gates allow now: trading all day, priced inside its entry zone."""
    return pending_decision_create(timezone.now().replace(second=0, microsecond=0),
                                   trading_start=dt.time(0, 0), trading_end=dt.time(0, 0))


def test_approval_in_another_tab_puts_the_position_on_the_open_overview_without_reload(operator_page):
    decision = approvable_decision()
    overview = operator_page
    overview.goto("/")
    overview.wait_for_selector('[data-conn="live"]')
    assert overview.locator(POSITION_ROW).count() == 0
    overview.evaluate("window.stillTheSamePage = true")

    queue = overview.context.new_page()
    queue.goto("/decisions/")
    queue.click(f'form[action$="/decisions/{decision.pk}/approve/"] button[type=submit]')
    queue.wait_for_selector(".notice-success")

    row = overview.wait_for_selector(POSITION_ROW)
    position = Position.objects.get(decision=decision)
    assert position.pk == int(row.get_attribute("data-position") or row.get_attribute("data-position-id"))
    assert "LONG" in row.inner_text() and "BTC/USDT:USDT" in row.inner_text()
    assert overview.evaluate("window.stillTheSamePage") is True


SEEN_TEXTS = """(runId) => {
  // Keep every text the run's progress line shows, across the reload that brings the report.
  const note = () => {
    const text = document.querySelector(`[data-progress-run="${runId}"] [data-text]`);
    if (!text) return;
    const seen = JSON.parse(sessionStorage.getItem('seen') || '[]');
    if (seen[seen.length - 1] !== text.textContent) seen.push(text.textContent);
    sessionStorage.setItem('seen', JSON.stringify(seen));
  };
  note();
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_backtest_page_follows_its_run_live_then_shows_the_report(operator_page, btc_15m, monkeypatch):
    """A queued run's page shows the worker's progress as it comes, then reloads into the report.

    The run is stored as the dashboard's start does, and a worker runs it: this process, with the
    worker role, so its events go through the outbox and daphne's relay as a django-q2 worker's do.
    """
    from execution.backtest import jobs
    from execution.tasks_backtest import backtest_execute
    from tests.execution.backtest.jobs_fixtures import close_of
    from tests.market_fixtures import WARMUP_BARS
    from dashboard.events import ROLE_ENV

    instrument, frame = btc_15m
    TradingConfigFactory(mode="ON", edge_threshold=0.5)
    queued = []
    monkeypatch.setattr(jobs, "enqueue_on_commit", lambda task, run_ids: queued.extend(run_ids))
    monkeypatch.setenv(ROLE_ENV, "worker")
    run = jobs.backtest_submit(symbols=[instrument.exchange_symbol], timeframe="15m",
                               start=close_of(frame, WARMUP_BARS - 1), end=close_of(frame, len(frame) - 1),
                               starting_equity=Decimal("10000"), parameters=None, actor="olga",
                               now=timezone.now())
    assert queued == [run.pk]
    page = operator_page
    page.goto(f"/backtests/{run.pk}/")
    page.wait_for_selector('[data-conn="live"]')
    progress = page.locator(f'[data-progress-run="{run.pk}"] [data-text]')
    assert progress.inner_text().startswith("queued · 0/")
    page.evaluate(SEEN_TEXTS, run.pk)

    backtest_execute(run.pk)
    run.refresh_from_db()

    page.wait_for_selector("[data-metrics]", timeout=30_000)      # the reload once the run was done
    seen = page.evaluate("() => JSON.parse(sessionStorage.getItem('seen') || '[]')")
    total = run.bars_total
    assert run.status == "done" and total > 50
    running = [text for text in seen if text.startswith("running · ")]
    # The progress the worker sent while it ran reached the page, in order, before its end.
    done_counts = [int(text.split(" · ")[1].split("/")[0]) for text in running]
    assert len(done_counts) >= 5 and done_counts == sorted(done_counts)
    assert sum(0 < count < total for count in done_counts) >= 5
    assert seen[-1] == f"done · {total}/{total} bars (100.0 %)"
    assert page.locator('[data-metric="trade_count"] td').inner_text() == str(run.metrics["trade_count"])
