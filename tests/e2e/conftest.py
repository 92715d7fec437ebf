"""Fixtures of the tests across processes: a file test database, daphne, Redis and Chromium.

The processes these tests start must read the pytest process's test database. MariaDB's is a
server database already; SQLite's test database is in memory unless TEST NAME names a file, so
when tests of this directory are selected the SQLite test database moves to a temporary file
(before pytest-django creates it; the whole run then uses it).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

from dashboard.events import doorbell_dir
from tests.e2e.processes import daphne_start, redis_start, require_program

HERE = Path(__file__).parent
CHROMIUM = "/usr/bin/chromium"


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives a headless Chromium against daphne (needs /usr/bin/chromium)")


def pytest_collection_finish(session):
    if any(Path(item.path).is_relative_to(HERE) for item in session.items):
        sqlite_test_database_to_file(session.config)


def sqlite_test_database_to_file(config) -> None:
    """Point SQLite's test database at a temporary file unless settings already name one."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    test = database.setdefault("TEST", {})
    if test.get("NAME") not in (None, "", ":memory:"):
        return
    directory = tempfile.mkdtemp(prefix="tradingbot-test-db-")
    test["NAME"] = os.path.join(directory, "test.sqlite3")
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


@pytest.fixture
def redis_url(tmp_path):
    """Yield the URL of a redis-server started for this test (skipped without one, failed in CI)."""
    server, url = redis_start(tmp_path)
    yield url
    server.stop()


@pytest.fixture(scope="module")
def web_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """Yield the base URL of daphne serving the project (in-memory layer, outbox relay) for this module."""
    server, url = daphne_start(tmp_path_factory.mktemp("daphne"))
    yield url
    server.stop()
    shutil.rmtree(doorbell_dir(), ignore_errors=True)  # daphne's relay socket outlives a terminated daphne


@pytest.fixture(scope="module")
def chromium():
    """Yield a headless Debian Chromium driven by Playwright (skipped without it, failed in CI)."""
    require_program(CHROMIUM, "the browser tests drive Debian's Chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, so Django sees an async context and
    # refuses the tests' ORM calls. Nothing runs concurrently here (the loop only turns inside a
    # Playwright call), so the check is lifted while the browser is up, for this module only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_context(transactional_db, chromium, web_server):
    """Yield a fresh browser profile on the test server; closed before the test database is flushed."""
    context = chromium.new_context(base_url=web_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context
    context.close()
