"""The local exchange: a Binance futures venue that ccxt trades against unchanged (DESIGN §8)."""
