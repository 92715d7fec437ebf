"""Drive the live engine from an offline feed on a simulated clock (replay or simulated market)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from analytics.services import ms_to_datetime
from execution.engine import CycleResult, cycle_run, is_decision_time
from execution.selectors import account_name_for
from market.feeds import Feed, FeedBar, bars_to_frame
from market.ingest import candles_upsert
from market.models import Instrument

logger = logging.getLogger(__name__)


@dataclass
class FeedRunner:
    """Store each bar the feed releases, then run the same cycle the live engine runs."""

    feed: Feed
    instrument: Instrument
    timeframe: str
    decision_interval_minutes: int
    # The bar close being processed and its bars not yet stored: kept until the cycle succeeds,
    # so a failed step is retried for the same close instead of skipping a bar.
    _pending_close_ms: int | None = field(default=None, repr=False)
    _pending_bars: list[FeedBar] = field(default_factory=list, repr=False)

    def warm_up(self, bars: int) -> int:
        """Store the first `bars` bars without trading on them; return how many were stored."""
        up_to = self.feed.next_close_ms + (bars - 1) * self.feed.interval_ms
        released = self.feed.next_bars(up_to)
        if released:
            candles_upsert(instrument_id=self.instrument.pk, timeframe=self.timeframe, frame=bars_to_frame(released))
        return len(released)

    def step(self) -> CycleResult | None:
        """Advance the clock to the next bar close, store the bar, run one cycle; None when done."""
        if self._pending_close_ms is None:
            close_ms = self.feed.next_close_ms
            if close_ms is None:
                return None
            self._pending_close_ms, self._pending_bars = close_ms, self.feed.next_bars(close_ms)
        if self._pending_bars:
            frame = bars_to_frame(self._pending_bars)
            candles_upsert(instrument_id=self.instrument.pk, timeframe=self.timeframe, frame=frame)
            self._pending_bars = []
        now = ms_to_datetime(self._pending_close_ms)
        result = cycle_run(now=now, decide=is_decision_time(now, self.decision_interval_minutes),
                           account_name=account_name_for(self.instrument.data_source))
        self._pending_close_ms = None
        return result

    def run(self, *, bars_per_second: float, max_steps: int | None = None, retry_delay_s: float = 1.0) -> int:
        """Step at `bars_per_second` (0 = as fast as possible) until the feed ends; return steps run.

        A failing step (a locked database, a full disk) is logged and retried for the same bar;
        the engine does not skip bars and does not die on a passing fault.
        """
        steps = 0
        while max_steps is None or steps < max_steps:
            started = time.monotonic()
            try:
                result = self.step()
            except Exception:
                logger.exception("engine step at %s failed; retrying", self._pending_close_ms)
                time.sleep(retry_delay_s)
                continue
            if result is None:
                logger.info("feed %s exhausted after %d steps", self.feed.name, steps)
                break
            steps += 1
            if bars_per_second > 0:
                time.sleep(max(0.0, 1.0 / bars_per_second - (time.monotonic() - started)))
        return steps
