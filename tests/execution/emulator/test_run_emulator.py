"""manage.py run_emulator: prints where and how to connect, persists, replays real candles."""
import json
import re
from io import StringIO

from django.core.management import call_command

from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

START_MS = 1749254400000  # 2025-06-07 00:00 UTC, inside the BTCUSDT 1m recording


def test_run_emulator_prints_url_and_keys_and_saves_state(tmp_path):
    out, state_file = StringIO(), tmp_path / "sandbox.json"

    call_command("run_emulator", port=0, state_file=str(state_file), duration_s=0.3, replay="BTCUSDT",
                 replay_start_ms=START_MS, replay_interval_s=0.05, stdout=out)

    text = out.getvalue()
    assert re.search(r"EXCHANGE_API_URL=http://127\.0\.0\.1:\d+", text)
    assert f"API key:    {DEFAULT_API_KEY}" in text and f"API secret: {DEFAULT_API_SECRET}" in text
    saved = json.loads(state_file.read_text())["account"]
    assert saved["prices"]["BTCUSDT"]["time_ms"] > 0  # a replayed candle moved the price
