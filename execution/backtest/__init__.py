"""Backtests: drive the trading core on a simulated clock and measure the result."""
