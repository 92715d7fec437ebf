"""The flow engine: derivatives and manual context combined into one explained view.

Pure: no Django, no I/O, no clock. `build_flow(inputs, params, news)` is the entry point; the
shell (analytics/inputs.py, analytics/services.py) loads the inputs as of a time and stores the result.
"""
from __future__ import annotations

from dataclasses import replace

from analytics.flow.derivatives import derivatives_context
from analytics.flow.etf import etf_context
from analytics.flow.liquidations import liquidation_context
from analytics.flow.scoring import crowd_bias, flow_warnings, global_risk, trap_index
from analytics.flow.sentiment import NewsScoreSource, NoNewsScore, sentiment_context
from analytics.flow.types import FlowInputs, FlowParams, FlowResult, FlowWarning, InputStatus

__all__ = ["FlowInputs", "FlowParams", "FlowResult", "NewsScoreSource", "NoNewsScore", "build_flow",
           "visible_inputs"]

DEFAULT_PARAMS = FlowParams()


def _valid(point, as_of_ms: int) -> bool:
    return point.known_at_ms <= as_of_ms and (point.valid_until_ms is None or point.valid_until_ms > as_of_ms)


def _visible(inputs: FlowInputs, p: FlowParams) -> dict[str, tuple]:
    t = inputs.as_of_ms
    zone_age = p.max_age("liquidation_zones")
    return {
        "funding": tuple(x for x in inputs.funding if x.ts_ms <= t),
        "open_interest": tuple(x for x in inputs.open_interest if x.ts_ms <= t),
        "basis": tuple(x for x in inputs.basis if x.ts_ms <= t),
        "cvd": tuple(x for x in inputs.cvd if x.ts_ms <= t),
        "candles": tuple(x for x in inputs.candles if x.close_time_ms <= t),
        "etf_flows": tuple(x for x in inputs.etf_flows if x.known_at_ms <= t),
        # A zone without valid_until ages out after its max age; one with valid_until holds until then.
        "liquidation_zones": tuple(x for x in inputs.liquidation_zones if _valid(x, t) and (
            x.valid_until_ms is not None or t - x.known_at_ms <= zone_age)),
        "sentiment": tuple(x for x in inputs.sentiment if _valid(x, t)),
    }


def _latest_ms(name: str, series: tuple) -> int | None:
    if not series:
        return None
    attr = {"candles": "close_time_ms", "etf_flows": "known_at_ms", "liquidation_zones": "known_at_ms",
            "sentiment": "known_at_ms"}.get(name, "ts_ms")
    return max(getattr(x, attr) for x in series)


def visible_inputs(inputs: FlowInputs, params: FlowParams) -> tuple[FlowInputs, tuple[InputStatus, ...]]:
    """Return the inputs cut at as_of (nothing later, nothing expired, stale series emptied) and their status."""
    series, statuses = _visible(inputs, params), []
    for name, items in series.items():
        latest = _latest_ms(name, items)
        before = getattr(inputs, name)
        if latest is None:
            # Zones that exist but all aged out count as stale, not missing.
            status = "stale" if name == "liquidation_zones" and any(_valid(z, inputs.as_of_ms) for z in before) \
                else "missing"
        elif inputs.as_of_ms - latest > params.max_age(name):
            status, series[name] = "stale", ()
        else:
            status = "ok"
        statuses.append(InputStatus(name, len(items), latest, status))
    return replace(inputs, **series), tuple(statuses)


def current_price(inputs: FlowInputs) -> float | None:
    """Return the given price, else the last candle close, else the last mark price."""
    if inputs.price is not None:
        return inputs.price
    if inputs.candles:
        return inputs.candles[-1].close
    return inputs.basis[-1].mark_price if inputs.basis else None


def build_flow(inputs: FlowInputs, params: FlowParams = DEFAULT_PARAMS,
               news: NewsScoreSource | None = None) -> FlowResult:
    """Return the flow view as of `inputs.as_of_ms`; missing or stale inputs contribute 0 with a note."""
    seen, statuses = visible_inputs(inputs, params)
    news_score = (news or NoNewsScore()).score(seen.asset, seen.as_of_ms)
    d = derivatives_context(seen.funding, seen.open_interest, seen.basis, seen.cvd, seen.candles, params)
    e = etf_context(seen.etf_flows, params)
    liq = liquidation_context(seen.liquidation_zones, current_price(seen), params)
    s = sentiment_context(seen.sentiment, seen.as_of_ms, params, news_score)
    bias = crowd_bias(d, s, params)
    trap = trap_index(bias.value, d, e, liq, params)
    risk = global_risk(trap.value, d, e, liq, s, params)
    warnings = flow_warnings(bias.value, trap.value, d, e, liq, s, params)
    warnings += [FlowWarning(f"stale_input:{x.name}", f"latest {x.latest_ms}") for x in statuses if x.status == "stale"]
    notes = tuple(f"{x.name}: missing" for x in statuses if x.status == "missing")
    notes += d.notes + e.notes + liq.notes + s.notes
    return FlowResult(seen.as_of_ms, bias, trap, risk, tuple(warnings), d, e, liq, s, statuses, notes)
