"""Brokers (paper and live over ccxt) behind one interface, and reconciliation (step 5)."""
