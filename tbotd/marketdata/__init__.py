"""Market data: closed candles from ccxt streams, REST warm-up and gap fill (cycle step 1)."""
