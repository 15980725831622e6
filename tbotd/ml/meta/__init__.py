"""The meta-label model (README: Local models, ``tbotd train --meta-label``): did the classic
strategy's own signal reach its take-profit before its stop-loss, after fees?"""
