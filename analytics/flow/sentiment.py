"""Sentiment context: manual readings decayed by age, plus an optional news score.

Pure: no Django, no I/O, no clock. A news source is anything with `score(asset, as_of_ms)`; the
default returns None, so without one the news term is simply absent.
"""
from __future__ import annotations

import math
from typing import Protocol

from analytics.flow.types import FlowParams, SentimentContext, SentimentPoint


class NewsScoreSource(Protocol):
    """A pluggable news score: -1 (bearish) .. +1 (bullish) known at `as_of_ms`, or None."""

    def score(self, asset: str, as_of_ms: int) -> float | None: ...


class NoNewsScore:
    """The default news source: never has a score."""

    def score(self, asset: str, as_of_ms: int) -> float | None:
        return None


def decay_weight(age_ms: int, half_life_ms: int) -> float:
    """Return 0.5 ** (age / half_life): 1 when fresh, 0.5 one half-life later."""
    return 0.5 ** (max(age_ms, 0) / half_life_ms)


def latest_per_source(points: tuple[SentimentPoint, ...], as_of_ms: int) -> list[SentimentPoint]:
    """Return the newest valid reading of each source as of `as_of_ms`."""
    latest: dict[str, SentimentPoint] = {}
    for p in points:
        valid = p.known_at_ms <= as_of_ms and (p.valid_until_ms is None or p.valid_until_ms > as_of_ms)
        if valid and (p.source not in latest or p.known_at_ms >= latest[p.source].known_at_ms):
            latest[p.source] = p
    return sorted(latest.values(), key=lambda p: p.source)


def sentiment_context(points: tuple[SentimentPoint, ...], as_of_ms: int, params: FlowParams,
                      news_score: float | None = None) -> SentimentContext:
    """Return sum(score * w) / max(sum(w), 1) over the latest reading per source and the news score.

    w = 0.5 ** (age / half-life) for manual readings and `news_weight` for the news score, so old
    readings fade towards 0 while fresh readings average.
    """
    readings = [(p.source, p.score, decay_weight(as_of_ms - p.known_at_ms, params.sentiment_half_life_ms))
                for p in latest_per_source(points, as_of_ms)]
    notes = []
    if news_score is not None and not math.isfinite(news_score):
        notes.append("news: non-finite score ignored")
        news_score = None
    if news_score is not None:
        news_score = min(1.0, max(-1.0, news_score))
    terms = [(s, w) for _, s, w in readings] + ([(news_score, params.news_weight)] if news_score is not None else [])
    if not terms:
        return SentimentContext(notes=("sentiment: no valid readings and no news score",))
    weight = sum(w for _, w in terms)
    score = sum(s * w for s, w in terms) / max(weight, 1.0)
    return SentimentContext(score=min(1.0, max(-1.0, score)), readings=tuple(readings), news_score=news_score,
                            notes=tuple(notes))
