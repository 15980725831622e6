"""Model monitoring (ARCHITECTURE: monitoring): how each model's stored predictions turned out.

Pure core: :mod:`outcomes` scores one prediction from candles, :mod:`metrics` turns scored
predictions into rolling metrics beside baselines. SQLite access lives in the store
(``store/outcomes.py``), the scoring pass in ``daemon/monitor.py``.
"""
