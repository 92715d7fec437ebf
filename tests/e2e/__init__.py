"""Tests across processes: daphne, worker processes, Redis and a headless Chromium."""
