"""``tbotd backtest --compare``: did ML improve my strategy?

On the same candles, predictions and funding, one ``ml_enhanced`` config is run as nine arms
with the daemon's own code, after fees and funding:

* ``classic`` — the classic strategy alone (it never sees a prediction, so it cannot change
  when only the predictions do);
* ``boost``, ``filter``, ``replace``, ``hybrid`` — the same classic strategy with the ML
  enhancement layer in each mode (the config's weight, threshold, secondary model);
* ``ml_directional`` — the ML prediction alone;
* ``ml_momentum``, ``ml_mean_reversion`` — the pure ML kinds over each model's own answer (the
  config's ``[strategy.consensus]``, ``[strategy.ml_momentum]``, ``[strategy.ml_mean_reversion]``
  tables, their defaults where absent); their differences are against ``ml_directional``;
* ``buy_and_hold`` — long from the first price any arm can trade at (the second candle's open)
  to the last close, sized like the others, no TP/SL.

With a ``[risk]`` section every strategy arm runs under the risk guard, as the daemon would, and
one more arm, ``<mode>_no_guard``, runs the config's own mode without it; its difference is
given against that mode's guarded arm (buy-and-hold is never guarded: it is the benchmark).

More arms plug in through :data:`EXTRA_ARMS` (an :class:`ExtraArm`: a name, how to make its
strategy from the config, whether it reads the classic signal, the arm it is compared with) —
the pure ML arms are its first entries, then ``meta_label``: the classic strategy with only the
meta-label gate over it (compared with ``classic``), there when ``[strategy.meta_label]`` names
a model directory.

Every arm shares the position rules (threshold, sizing, exits, entry cap). The indicators are
computed once and shared by the five arms that use them. For each enhanced arm the difference to
the classic arm is given with a paired circular block bootstrap 95 % interval (blocks of whole
days by default, the same resampled blocks for both arms) of the per-bar return difference and
of the Sharpe difference: an interval that contains 0 means this history cannot tell them apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from tbotd.backtest.metrics import bars_per_year
from tbotd.backtest.predictions import ml_inputs, with_meta
from tbotd.backtest.run import BacktestResult, Inputs, simulate
from tbotd.config.settings import Settings
from tbotd.config.strategy import MLEnhancedConfig
from tbotd.domain.actions import Reason
from tbotd.domain.errors import InvalidDataError
from tbotd.risk.guard import RiskLimits
from tbotd.strategy.build import build_strategy, meta_label, pure_ml
from tbotd.strategy.kinds import EnhanceMode, StrategyKind
from tbotd.strategy.signal import ABSTAIN, BIT, LONG, ExitHints, Opinions, SignalSeries
from tbotd.strategy.strategy import Strategy

ENHANCED = tuple(str(m) for m in EnhanceMode)


@dataclass(frozen=True)
class ExtraArm:
    """An arm beyond the classic, enhanced and ``ml_directional`` ones: ``make`` turns the config
    and its ``ml_enhanced`` strategy into the arm's strategy; ``uses_classic``: its signal
    combines the classic signal (shared, computed once); ``versus``: the arm its bootstrap
    difference is taken against."""

    name: str
    make: Callable[[Settings, Strategy], Strategy | None]  # None: not configured, no such arm
    uses_classic: bool
    versus: str
    optional: bool = False  # only there when configured (not in :data:`ARMS`)


def _pure_arm(kind: StrategyKind) -> ExtraArm:
    def make(settings: Settings, enhanced: Strategy) -> Strategy:
        return replace(
            enhanced, kind=kind, classic=None, enhance=None, pure=pure_ml(settings, kind)
        )

    return ExtraArm(str(kind), make, uses_classic=False, versus="ml_directional")


def _meta_arm(settings: Settings, enhanced: Strategy) -> Strategy | None:
    """The classic strategy with only the meta-label gate over it (``[strategy.meta_label]``
    ``models_dir``; None without one): what the meta model alone does to the classic trades."""
    gate = meta_label(settings)
    if gate is None:
        return None
    classic = replace(enhanced, kind=StrategyKind.CLASSIC, enhance=None)
    return replace(classic, meta=gate, label=f"meta_label:{classic.name.removeprefix('classic:')}")


EXTRA_ARMS: tuple[ExtraArm, ...] = (
    _pure_arm(StrategyKind.ML_MOMENTUM),
    _pure_arm(StrategyKind.ML_MEAN_REVERSION),
    ExtraArm("meta_label", _meta_arm, uses_classic=True, versus="classic", optional=True),
)
ARMS = (
    "classic",
    *ENHANCED,
    "ml_directional",
    *(a.name for a in EXTRA_ARMS if not a.optional),
    "buy_and_hold",
)
DAY_BARS = 288  # 5-minute bars; the block length of the bootstrap by default
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap 95 % interval."""

    estimate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        """For compare.json."""
        return {"estimate": self.estimate, "ci95_low": self.low, "ci95_high": self.high}


@dataclass(frozen=True)
class Difference:
    """One enhanced arm against the classic arm."""

    mean_bar_return: Interval  # per-bar return of the arm minus the classic arm's
    sharpe: Interval  # annualised Sharpe of the arm minus the classic arm's
    total_return: float
    trades: int
    versus: str = "classic"

    def as_dict(self) -> dict[str, object]:
        """For compare.json."""
        return {
            "versus": self.versus,
            "mean_bar_return": self.mean_bar_return.as_dict(),
            "sharpe": self.sharpe.as_dict(),
            "total_return": self.total_return,
            "trades": self.trades,
        }


@dataclass(frozen=True)
class Comparison:
    """Every arm's backtest and each enhanced arm's difference to the classic arm."""

    strategy: str  # the compared strategy, e.g. "ml_enhanced:mean_reversion"
    arms: dict[str, BacktestResult]
    differences: dict[str, Difference]
    block_bars: int
    resamples: int
    seed: int
    seconds: float


def arm_strategies(settings: Settings) -> dict[str, Strategy]:
    """The strategy of every arm but buy-and-hold, from one ``ml_enhanced`` config."""
    if not isinstance(settings.strategy, MLEnhancedConfig):
        raise InvalidDataError(
            f'--compare needs a config with strategy.kind = "ml_enhanced" (this one is '
            f"{settings.strategy.kind}): it compares a classic strategy with and without ML"
        )
    enhanced = build_strategy(settings)
    if enhanced.enhance is None:  # build_strategy always sets it for ml_enhanced
        raise InvalidDataError("an ml_enhanced strategy without its enhancement layer")
    out = {"classic": replace(enhanced, kind=StrategyKind.CLASSIC, enhance=None, meta=None)}
    for mode in EnhanceMode:
        out[str(mode)] = replace(enhanced, enhance=replace(enhanced.enhance, mode=mode))
    out["ml_directional"] = replace(
        enhanced, kind=StrategyKind.ML_DIRECTIONAL, classic=None, enhance=None
    )
    for arm in EXTRA_ARMS:
        made = arm.make(settings, enhanced)
        if made is not None:
            out[arm.name] = made
    return out


def buy_and_hold_series(n: int, first: int = 0) -> SignalSeries:
    """Long at full confidence after candle ``first``, no opinion otherwise."""
    direction = np.full(n, ABSTAIN, dtype=np.int8)
    confidence = np.zeros(n)
    if first < n:
        direction[first], confidence[first] = LONG, 1.0
    reasons = np.full(n, BIT[Reason.NO_SETUP], dtype=np.int64)
    return SignalSeries(Opinions(direction, confidence, reasons), ExitHints.none(n))


def run_compare(
    inputs: Inputs,
    settings: Settings,
    *,
    block_bars: int = DAY_BARS,
    resamples: int = RESAMPLES,
    seed: int = 0,
    warmup_bars: int = 0,
) -> Comparison:
    """Every arm over ``inputs``, and the bootstrap differences to the classic arm."""
    if block_bars < 1 or resamples < 1:
        raise InvalidDataError("block_bars and resamples must be at least 1")
    started = time.perf_counter()
    strategies = arm_strategies(settings)
    bars = inputs.bars
    ml = with_meta(strategies.values(), ml_inputs(inputs.table, inputs.rows), bars)
    classic = strategies["classic"]
    base = classic.base(bars.high, bars.low, bars.close)  # the indicators, once
    arms: dict[str, BacktestResult] = {}
    with_classic = {"classic", *ENHANCED} | {a.name for a in EXTRA_ARMS if a.uses_classic}
    for name, strategy in strategies.items():
        series = strategy.combine(base if name in with_classic else None, ml)
        arms[name] = simulate(inputs, settings, strategy, series.warming_up(warmup_bars))
    hold = replace(classic, label="buy_and_hold")
    hold_series = buy_and_hold_series(len(bars), warmup_bars)
    off = RiskLimits()
    arms["buy_and_hold"] = simulate(inputs, settings, hold, hold_series, protect=False, limits=off)
    per_year = bars_per_year(bars.timeframe)
    differences = {
        name: difference(arms[name], arms["classic"], per_year, block_bars, resamples, seed)
        for name in ENHANCED
    }
    for extra in (a for a in EXTRA_ARMS if a.name in arms):
        versus = arms[extra.versus]
        found = difference(arms[extra.name], versus, per_year, block_bars, resamples, seed)
        differences[extra.name] = replace(found, versus=extra.versus)
    if settings.risk.limits().active:  # the config's own mode without the guard
        mode = str(settings.strategy.enhance.mode)  # type: ignore[union-attr]
        own = strategies[mode]
        series = own.combine(base, ml).warming_up(warmup_bars)
        arm = f"{mode}_no_guard"
        arms[arm] = simulate(inputs, settings, replace(own, label=arm), series, limits=off)
        differences[arm] = replace(
            difference(arms[arm], arms[mode], per_year, block_bars, resamples, seed),
            versus=mode,
        )
    name = f"{StrategyKind.ML_ENHANCED}:{classic.name.removeprefix('classic:')}"
    return Comparison(
        name, arms, differences, block_bars, resamples, seed, time.perf_counter() - started
    )


def bar_returns(result: BacktestResult) -> NDArray[np.float64]:
    """Per-bar equity returns (the first against the initial equity)."""
    equity = result.equity.equity
    before = np.concatenate([[float(result.initial_equity)], equity[:-1]])
    out = np.zeros(len(equity))
    np.divide(equity, before, out=out, where=before > 0)
    return np.where(before > 0, out - 1.0, 0.0)


def difference(
    arm: BacktestResult,
    classic: BacktestResult,
    per_year: float,
    block_bars: int,
    resamples: int,
    seed: int,
) -> Difference:
    """``arm`` minus ``classic``: per-bar return and Sharpe, each with a paired circular block
    bootstrap 95 % interval (percentiles of ``resamples`` resampled histories)."""
    a, c = bar_returns(arm), bar_returns(classic)
    n = len(a)
    length = min(block_bars, n)
    blocks = math.ceil(n / length)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(resamples, blocks))
    size = blocks * length
    sums = {k: _block_sums(x, length)[starts].sum(axis=1) for k, x in (("a", a), ("c", c))}
    squares = {k: _block_sums(x * x, length)[starts].sum(axis=1) for k, x in (("a", a), ("c", c))}
    mean_diff = (sums["a"] - sums["c"]) / size
    sharpe_diff = _sharpe(sums["a"], squares["a"], size, per_year) - _sharpe(
        sums["c"], squares["c"], size, per_year
    )
    point_sharpe = _sharpe(np.array([a.sum()]), np.array([(a * a).sum()]), n, per_year) - _sharpe(
        np.array([c.sum()]), np.array([(c * c).sum()]), n, per_year
    )
    return Difference(
        _interval(float(np.mean(a - c)), mean_diff),
        _interval(float(point_sharpe[0]), sharpe_diff),
        float((arm.final_equity - classic.final_equity) / classic.initial_equity),
        len(arm.trades),
    )


def _block_sums(x: NDArray[np.float64], length: int) -> NDArray[np.float64]:
    """Sum of ``x`` over the (circular) block of ``length`` bars starting at each bar."""
    wrapped = np.concatenate([x, x[: length - 1]])
    total = np.concatenate([[0.0], np.cumsum(wrapped)])
    return np.asarray(total[length : length + len(x)] - total[: len(x)], dtype=np.float64)


def _sharpe(
    sums: NDArray[np.float64], squares: NDArray[np.float64], size: int, per_year: float
) -> NDArray[np.float64]:
    """Annualised Sharpe from sums; 0 where returns never vary (an arm that never trades)."""
    mean = sums / size
    var = np.maximum(squares - size * mean * mean, 0.0) / max(size - 1, 1)
    sd = np.sqrt(var)
    out = np.zeros(len(sums))
    np.divide(mean, sd, out=out, where=sd > 1e-15)
    return out * math.sqrt(per_year)


def _interval(estimate: float, samples: NDArray[np.float64]) -> Interval:
    low, high = np.percentile(samples, [2.5, 97.5])
    return Interval(estimate, float(low), float(high))


def accounts(result: BacktestResult) -> dict[str, object]:
    """The ledger check of an arm: final − initial equity = net PnL (pnl − fees + funding)."""
    net = sum((t.net for t in result.trades), Decimal(0))
    change = result.final_equity - result.initial_equity
    return {"final_minus_initial": str(change), "net_pnl": str(net), "adds_up": change == net}
