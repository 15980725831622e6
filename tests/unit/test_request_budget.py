"""The ops endpoint's per-client budget, on an injected clock: a burst, then the sustained rate."""

from __future__ import annotations

from tbotd.ops.guard import RequestBudget


def test_a_client_gets_its_burst_then_the_sustained_rate() -> None:
    """40 at once, then refused; half a second later 10 more (20/s), and other clients are apart."""
    budget = RequestBudget()
    assert [budget.allow("a", now=0.0) for _ in range(41)] == [True] * 40 + [False]
    assert budget.allow("b", now=0.0)
    later = [budget.allow("a", now=0.5) for _ in range(11)]
    assert later == [True] * 10 + [False]


def test_an_idle_client_never_saves_more_than_the_burst() -> None:
    """An hour of silence refills to the burst, not beyond it."""
    budget = RequestBudget()
    assert budget.allow("a", now=0.0)
    assert sum(budget.allow("a", now=3600.0) for _ in range(100)) == 40
