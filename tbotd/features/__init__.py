"""Causal features computed from closed candles only (step 2 of the cycle)."""
