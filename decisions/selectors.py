"""Reads for the decision stage."""
from decisions.models import TradingConfig


def trading_config_get() -> TradingConfig:
    """Return the single configuration row, creating it with defaults on first use."""
    config = TradingConfig.objects.order_by("pk").first()
    return config if config is not None else TradingConfig.objects.create()
