"""tbotd: an asyncio daemon that trades perpetual futures with an ML directional strategy.

The 5-minute cycle, one package per step (see ARCHITECTURE.md)::

    marketdata -> features -> predictor -> strategy -> execution -> (exchange)
                         every step records to -> store
"""

__version__ = "0.1.0"
