"""Manual inputs: ETF-flow and liquidation-zone uploads, sentiment readings (docs/MANUAL_INPUTS.md)."""
