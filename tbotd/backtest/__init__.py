"""Backtesting with the daemon's own decision and fill code (``tbotd backtest``).

Public API::

    result = run_backtest(candles, predictions, settings, funding=None, market=None)
    result.trades          # tuple of tbotd.store.wallet.Trade, like the daemon's store.trades()
    result.final_equity    # exact Decimal; also fees, funding, initial_equity
    result.equity          # per-bar float curve (equity, balance, position)
    build_report(result)   # the metrics of report.json

Inputs: :func:`read_predictions_csv`, :func:`read_funding`, :func:`read_candles`, or
:meth:`PredictionTable.from_history` for the local models.
"""

from tbotd.backtest.inputs import find_gaps, read_candles
from tbotd.backtest.predictions import PredictionTable
from tbotd.backtest.predictions_csv import prediction_table, read_predictions_csv
from tbotd.backtest.run import BacktestResult, EquityCurve, run_backtest
from tbotd.marketdata.funding_csv import read_funding

__all__ = [
    "BacktestResult",
    "EquityCurve",
    "PredictionTable",
    "find_gaps",
    "prediction_table",
    "read_candles",
    "read_funding",
    "read_predictions_csv",
    "run_backtest",
]
