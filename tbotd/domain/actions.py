"""What a strategy decides: a list of actions per symbol per candle, and why.

Actions are plain data. The position rules (a pure function) produce them; execution carries
them out. A flip is ``[ClosePosition, OpenPosition]`` in one decision. Why is structured too: a
:class:`Hold` carries a :class:`HoldKind`, and every decision a :class:`DecisionTrace` (the
classic signal, the ML opinion, what the enhancement layer made of them) — values to count and
compare, never text to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tbotd.domain.enums import Side
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import to_decimal

_ZERO = Decimal(0)


class ExitSource(StrEnum):
    """Where the take-profit and stop-loss of a new position come from (README: Strategies)."""

    PREDICTION = "prediction"  # absolute prices given by the model
    VOLATILITY = "volatility"  # k × predicted sd
    FIXED = "fixed"  # configured percentages


class ExitLevel(StrEnum):
    """Which protective level a clamp moved."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class ClampReason(StrEnum):
    """Why a level was moved from where its source put it."""

    BELOW_MIN = "below_min"  # nearer than the configured minimum
    ABOVE_MAX = "above_max"  # farther than the configured maximum
    LIQUIDATION = "liquidation"  # farther than the leverage allows before liquidation


@dataclass(frozen=True, slots=True)
class Clamp:
    """One level moved into bounds: the distance asked and the distance used (fractions)."""

    level: ExitLevel
    asked: Decimal
    used: Decimal
    reason: ClampReason


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """How to place TP/SL once the entry's actual fill price is known.

    Either absolute prices (``stop_loss``/``take_profit``) or distances as fractions of the fill
    price (``sl_distance``/``tp_distance``); never both. ``clamps``: how the bounds moved the
    levels when the decision priced them at the mark (README: Protection); the fill re-applies them.
    """

    source: ExitSource
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    sl_distance: Decimal | None = None
    tp_distance: Decimal | None = None
    clamps: tuple[Clamp, ...] = ()

    def __post_init__(self) -> None:
        if self.source is ExitSource.PREDICTION:
            first, second = self.stop_loss, self.take_profit
            unwanted = (self.sl_distance, self.tp_distance)
        else:
            first, second = self.sl_distance, self.tp_distance
            unwanted = (self.stop_loss, self.take_profit)
        if (  # the common case, as the rules build it: two positive Decimals, nothing else
            type(first) is Decimal
            and type(second) is Decimal
            and unwanted == (None, None)
            and first.is_finite()
            and second.is_finite()
            and first > _ZERO
            and second > _ZERO
        ):
            return
        self._parse()

    def _parse(self) -> None:
        """The fields one by one: the wanted pair given and positive (parsed into Decimals if
        given as other numbers), the other source's pair not given; each error named."""
        prices = (self.stop_loss, self.take_profit)
        distances = (self.sl_distance, self.tp_distance)
        if self.source is ExitSource.PREDICTION:
            wanted, values, others = ("stop_loss", "take_profit"), prices, distances
        else:
            wanted, values, others = ("sl_distance", "tp_distance"), distances, prices
        if None in values or others != (None, None):
            raise InvalidDataError(
                f"a {self.source} exit plan needs exactly {' and '.join(wanted)}"
            )
        for name, given in zip(wanted, values, strict=True):
            value = given
            if type(value) is not Decimal or not value.is_finite():  # parse what is not one yet
                value = to_decimal(value, f"exit plan {name}")
                object.__setattr__(self, name, value)
            if value <= 0:
                raise InvalidDataError(f"exit plan {name} {value} must be positive")


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """Open a new position of ``qty`` contracts, protected per ``exits`` once filled."""

    symbol: str
    side: Side
    qty: Decimal
    exits: ExitPlan
    reason: str


@dataclass(frozen=True, slots=True)
class ClosePosition:
    """Close the whole open position on ``side`` at market; its protective orders are cancelled."""

    symbol: str
    side: Side
    qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class MoveProtection:
    """Replace the protective orders: the new ones are placed before the old ones are cancelled."""

    symbol: str
    stop_loss: Decimal
    take_profit: Decimal
    reason: str
    clamps: tuple[Clamp, ...] = ()


class HoldKind(StrEnum):
    """Why the position rules did nothing; the ``refusal`` kinds wanted to open and could not."""

    ABSTAIN = "abstain"  # the signal source had no opinion (degraded ML, warm-up, ML abstained)
    BELOW_THRESHOLD = "below_threshold"
    FLAT_SIGNAL = "flat_signal"  # flat with nothing to close, or on_neutral = hold
    ALREADY_IN_POSITION = "already_in_position"
    EXITS_UNCHANGED = "exits_unchanged"  # refresh on hold: the levels would not move
    EXITS_NOT_REFRESHED = "exits_not_refreshed"  # refresh on hold: the new levels are unusable
    ENTRY_CAP = "entry_cap"  # max_entries_per_hour reached
    EXITS_UNUSABLE = "exits_unusable"  # no valid TP/SL around the price
    SIZE_REFUSED = "size_refused"  # below the market minimum, or no equity
    RISK_HALTED = "risk_halted"  # the risk guard tripped, or the operator halted entries
    RISK_LIMIT = "risk_limit"  # the risk guard's exposure or entries-per-day limit

    @property
    def refusal(self) -> bool:
        """The rules wanted to open a position and could not."""
        return self in _REFUSALS


_REFUSALS = frozenset(
    {
        HoldKind.ENTRY_CAP,
        HoldKind.EXITS_UNUSABLE,
        HoldKind.SIZE_REFUSED,
        HoldKind.RISK_HALTED,
        HoldKind.RISK_LIMIT,
    }
)


@dataclass(frozen=True, slots=True)
class Hold:
    """Do nothing: ``kind`` says why as a value, ``reason`` in words for people."""

    symbol: str
    reason: str
    kind: HoldKind


Action = OpenPosition | ClosePosition | MoveProtection | Hold


class Direction(StrEnum):
    """What a signal source wants: a side, no position, or no opinion at all."""

    LONG = "long"
    SHORT = "short"
    FLAT = "flat"
    ABSTAIN = "abstain"


class Reason(StrEnum):
    """Why a signal source said what it said (structured, one code per fact)."""

    ML_SIGNAL = "ml_signal"  # the model's call, as given
    ML_NO_PREDICTION = "ml_no_prediction"
    ML_DEGRADED = "ml_degraded"  # the chain fell back to its neutral "no new risk" signal
    ML_LOW_CONFIDENCE = "ml_low_confidence"  # below enhance.confidence_threshold
    SECONDARY_MISSING = "secondary_missing"  # the confirming model gave no answer
    SECONDARY_UNCONFIRMED = "secondary_unconfirmed"  # the confirming model disagreed
    WARMUP = "warmup"  # too few candles for an indicator
    NO_SETUP = "no_setup"
    BELOW_LOWER_BAND = "below_lower_band"
    ABOVE_UPPER_BAND = "above_upper_band"
    RSI_OVERSOLD = "rsi_oversold"
    RSI_OVERBOUGHT = "rsi_overbought"
    CROSSED_MIDDLE_BAND = "crossed_middle_band"
    FAST_ABOVE_SLOW = "fast_above_slow"
    FAST_BELOW_SLOW = "fast_below_slow"
    # the pure ML kinds (README: Pure ML strategies); appended, so the older bits keep their place
    DIRECTION_MISSING = "direction_missing"  # the direction model gave no answer
    REGIME_MISSING = "regime_missing"  # the regime model gave no answer
    REGIME_TRENDING = "regime_trending"  # ml_momentum's gate is open (with hysteresis)
    REGIME_NOT_TRENDING = "regime_not_trending"
    REGIME_SIDEWAYS = "regime_sideways"  # ml_mean_reversion's gate is open
    REGIME_NOT_SIDEWAYS = "regime_not_sideways"
    NO_EXTREME = "no_extreme"  # no direction probability at the level ml_mean_reversion fades
    FADED_EXTREME = "faded_extreme"  # ml_mean_reversion trades against the models' call
    CONSENSUS = "consensus"  # a quorum of the models agreed on the direction traded
    NO_QUORUM = "no_quorum"  # too few models answered with enough confidence to vote
    NO_CONSENSUS = "no_consensus"  # a quorum voted, but too few of them agreed
    CONSENSUS_AGAINST = "consensus_against"  # the quorum agreed on another direction
    # the meta-label gate (README: The ML enhancement layer); appended like the above
    META_CONFIRMED = "meta_confirmed"  # P(take-profit first) at or above the gate's threshold
    META_VETOED = "meta_vetoed"  # below it: the classic setup is dropped
    META_MISSING = "meta_missing"  # no answer from the meta-label model: dropped too


class Provenance(StrEnum):
    """What the ML enhancement layer did to the classic signal (README: Strategies)."""

    CLASSIC_ONLY = "classic_only"  # no ML involved (classic kind, or no classic signal)
    ML_CONFIRMED = "ml_confirmed"  # filter: ML agreed, the signal passed
    BOOSTED = "boosted"  # boost: ML agreed, confidence blended up
    REDUCED = "reduced"  # boost: ML disagreed, confidence cut
    VETOED = "vetoed"  # filter: ML disagreed, the signal dropped
    REPLACED = "replaced"  # replace: ML's direction and confidence stand in
    BLENDED = "blended"  # hybrid: weighted blend of the two signed confidences
    ML_ABSTAINED = "ml_abstained"  # ML had no usable opinion: the mode's fallback applied


@dataclass(frozen=True, slots=True)
class Opinion:
    """One signal: a direction, a confidence in [0, 1] (0 when abstaining) and its reasons."""

    direction: Direction
    confidence: float
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class DecisionTrace:
    """Where a decision came from: the strategy, what the enhancement layer did, the classic
    (``base``) signal, the ML opinion and the signal the position rules acted on."""

    strategy: str
    result: Opinion
    provenance: Provenance | None = None
    base: Opinion | None = None
    ml: Opinion | None = None
