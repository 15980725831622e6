"""The ``[risk]`` section: the risk guard's limits. Every rule is off unless set.

Percentages are of equity (the whole wallet, every symbol): ``max_drawdown_pct`` from the
equity peak, ``daily_loss_pct`` from the UTC day's first close, ``max_gross_exposure_pct`` the
sum of the positions' notionals (200 = twice the equity), ``max_symbol_exposure_pct`` one
position's notional. Limits that cannot work are refused here, so ``check-config`` reports them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tbotd.risk.guard import OnTrip, RiskLimits

HUNDRED = Decimal(100)


class RiskConfig(BaseModel):
    """The risk guard's limits (``[risk]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_drawdown_pct: Annotated[Decimal, Field(gt=0, lt=100)] | None = None
    daily_loss_pct: Annotated[Decimal, Field(gt=0, lt=100)] | None = None
    stop_loss_streak: Annotated[int, Field(ge=1, le=1000)] | None = None
    cooldown_min: Annotated[int, Field(ge=1, le=10_080)] | None = None
    max_gross_exposure_pct: Annotated[Decimal, Field(gt=0, le=100_000)] | None = None
    max_symbol_exposure_pct: Annotated[Decimal, Field(gt=0, le=100_000)] | None = None
    max_entries_per_day: Annotated[int, Field(ge=1, le=100_000)] | None = None
    on_trip: OnTrip = OnTrip.HALT

    @model_validator(mode="after")
    def _streak_needs_cooldown(self) -> RiskConfig:
        """A streak without a cooldown (or the reverse) is a half-set rule."""
        if (self.stop_loss_streak is None) != (self.cooldown_min is None):
            msg = "stop_loss_streak and cooldown_min go together: set both or neither"
            raise ValueError(msg)
        return self

    def limits(self) -> RiskLimits:
        """The pure guard's limits (fractions, milliseconds)."""

        def frac(pct: Decimal | None) -> Decimal | None:
            return None if pct is None else pct / HUNDRED

        return RiskLimits(
            max_drawdown=frac(self.max_drawdown_pct),
            daily_loss=frac(self.daily_loss_pct),
            stop_loss_streak=self.stop_loss_streak,
            cooldown_ms=(self.cooldown_min or 0) * 60_000,
            max_gross_exposure=frac(self.max_gross_exposure_pct),
            max_symbol_exposure=frac(self.max_symbol_exposure_pct),
            max_entries_per_day=self.max_entries_per_day,
            on_trip=self.on_trip,
        )
