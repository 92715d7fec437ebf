import pytest

from analytics.flow.sentiment import NoNewsScore, decay_weight, latest_per_source, sentiment_context
from analytics.flow.types import DAY_MS, FlowParams, SentimentPoint

P = FlowParams()
T = 10 * DAY_MS


def test_decay_weight_halves_every_half_life():
    assert decay_weight(DAY_MS, DAY_MS) == 0.5
    assert decay_weight(0, DAY_MS) == 1.0


def test_sentiment_context_one_reading_fades_with_age():
    ctx = sentiment_context((SentimentPoint(0.8, "desk", T - DAY_MS),), T, P)

    # 0.8 * 0.5 / max(0.5, 1)
    assert ctx.score == pytest.approx(0.4)


def test_sentiment_context_fresh_readings_average():
    points = (SentimentPoint(0.8, "desk", T), SentimentPoint(-0.2, "fng", T))

    assert sentiment_context(points, T, P).score == pytest.approx(0.3)


def test_sentiment_context_latest_reading_per_source_wins():
    points = (SentimentPoint(-1.0, "desk", T - 3600_000), SentimentPoint(0.5, "desk", T))

    assert sentiment_context(points, T, P).score == pytest.approx(0.5)


def test_sentiment_context_expired_and_future_readings_ignored():
    points = (SentimentPoint(0.9, "a", T - 10, valid_until_ms=T), SentimentPoint(0.9, "b", T + 1))

    assert latest_per_source(points, T) == []
    assert sentiment_context(points, T, P).score is None


def test_sentiment_context_news_score_joins_with_its_weight():
    ctx = sentiment_context((SentimentPoint(0.6, "desk", T),), T, P, news_score=-0.2)

    assert ctx.score == pytest.approx((0.6 - 0.2) / 2)
    assert ctx.news_score == -0.2


def test_no_news_score_returns_none():
    assert NoNewsScore().score("BTC", T) is None
