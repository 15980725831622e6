"""The position rules say why they hold as a value (HoldKind), whatever the signal source."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tbotd.domain import ClosePosition, Hold, OpenPosition, Side
from tbotd.domain.actions import Direction, HoldKind
from tbotd.strategy.rules import DecisionInput, decide_vote
from tbotd.strategy.signal import ExitHint, Vote
from tests.unit.test_manager import CFG, LINEAR, position

MARK = Decimal(20000)


def rules(
    vote: Vote, pos: object = None, equity: str = "10000", entries: int = 0, **cfg: object
) -> list[object]:
    inp = DecisionInput(LINEAR.symbol, None, pos, Decimal(equity), MARK, LINEAR, entries)  # type: ignore[arg-type]
    return list(decide_vote(inp, vote, replace(CFG, **cfg)))  # type: ignore[arg-type]


def kind(actions: list[object]) -> HoldKind:
    [hold] = actions
    assert isinstance(hold, Hold)
    return hold.kind


L = Vote(Direction.LONG, 0.9)


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (rules(Vote(Direction.ABSTAIN, 0.0)), HoldKind.ABSTAIN),
        (rules(Vote(Direction.ABSTAIN, 0.0), position()), HoldKind.ABSTAIN),
        (rules(Vote(Direction.LONG, 0.69)), HoldKind.BELOW_THRESHOLD),
        (rules(Vote(Direction.FLAT, 0.9)), HoldKind.FLAT_SIGNAL),
        (rules(L, position(Side.LONG)), HoldKind.ALREADY_IN_POSITION),
        (rules(L, entries=4, max_entries_per_hour=4), HoldKind.ENTRY_CAP),
        (rules(L, equity="1"), HoldKind.SIZE_REFUSED),
        (
            rules(Vote(Direction.LONG, 0.9, ExitHint(Decimal(21000), Decimal(22000)))),
            HoldKind.EXITS_UNUSABLE,
        ),
    ],
)
def test_each_hold_has_its_kind(actions: list[object], expected: HoldKind) -> None:
    """Abstaining, below threshold, flat with nothing to close, already in position, and the
    three refusals (entry cap, size, exits) are told apart by kind, not by their text."""
    assert kind(actions) is expected
    assert expected.refusal is (
        expected in {HoldKind.ENTRY_CAP, HoldKind.SIZE_REFUSED, HoldKind.EXITS_UNUSABLE}
    )


def test_an_abstaining_source_never_flattens() -> None:
    """No opinion keeps an open position (its TP/SL stay on the exchange); a confident flat
    closes it, a flip closes and opens."""
    assert kind(rules(Vote(Direction.ABSTAIN, 0.0), position(Side.SHORT))) is HoldKind.ABSTAIN
    [close] = rules(Vote(Direction.FLAT, 0.95), position(Side.SHORT))
    assert isinstance(close, ClosePosition)
    close, open_ = rules(L, position(Side.SHORT))
    assert isinstance(close, ClosePosition)
    assert isinstance(open_, OpenPosition)
