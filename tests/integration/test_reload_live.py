"""SIGHUP on a running daemon against `tbotd sim`: each class of key is applied fully (the
leverage on the venue before the next entry, the ML service and token, the models directory) or
refused whole, saying which key needs a restart; every reload is recorded as an event."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tbotd.daemon.status import status
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
from tests.integration.reload_support import SYMBOL, config_text, oracle, running, sim_url


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exchange keys and the ML token come from the environment, as in production."""
    monkeypatch.setenv("TBOTD_EXCHANGE__API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("TBOTD_EXCHANGE__API_SECRET", DEMO_API_SECRET)
    monkeypatch.setenv("BASIS_ML_API_TOKEN", "tok-A")


async def test_a_reloaded_leverage_is_set_on_the_venue_before_the_next_entry(
    tmp_path: Path,
) -> None:
    """Live, 1× at start; reloaded to 3×: the next close sets the venue's leverage to 3× (an
    event says the reload did it, no "set back" warning) and the entry is booked at 3×."""
    async with oracle("tok-A") as (_, url), running(tmp_path, url) as rig:
        account = rig.sim.account(DEMO_API_KEY)
        assert account.leverage_of("BTCUSDT") == 1
        event = await rig.hup(config_text(tmp_path, sim_url(rig), url, leverage=3))
        assert event.data["applied"] is True
        assert event.data["changes"] == ["execution.leverage: 1 -> 3"]
        await rig.close()
        assert account.leverage_of("BTCUSDT") == 3
        assert rig.app.store.positions()[SYMBOL].leverage == Decimal(3)
        kinds = rig.kinds()
        assert "leverage-applied" in kinds
        assert "leverage" not in kinds  # not reported as a hand change set back


async def test_a_reloaded_leverage_opens_paper_positions_at_it(tmp_path: Path) -> None:
    """Paper, 1× at start; reloaded to 4×: the next entry is opened (and margined) at 4×."""
    async with oracle("tok-A") as (_, url), running(tmp_path, url, mode="paper") as rig:
        text = config_text(tmp_path, sim_url(rig), url, mode="paper", leverage=4)
        assert (await rig.hup(text)).data["applied"] is True
        await rig.close()
        position = rig.app.store.positions()[SYMBOL]
        assert position.leverage == Decimal(4)


async def test_a_reloaded_ml_service_and_token_take_every_request_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Service A (token A) answers the first close; reloaded to service B with token B, the
    next close asks B only — authenticated — and `/status` names B."""
    async with (
        oracle("tok-A") as (a, url_a),
        oracle("tok-B") as (b, url_b),
        running(tmp_path, url_a) as rig,
    ):
        await rig.close()
        assert (a.hits, b.hits) == (1, 0)
        monkeypatch.setenv("BASIS_ML_API_TOKEN", "tok-B")
        event = await rig.hup(config_text(tmp_path, sim_url(rig), url_b))
        assert event.data["applied"] is True
        assert "ml.token: ******** -> ********" in event.data["changes"]
        await rig.close()
        assert (a.hits, b.hits) == (1, 1)
        assert rig.app.cycle.last is not None
        [result] = rig.app.cycle.last.symbols
        assert result.prediction is not None
        assert str(result.prediction.source) == "remote"  # B accepted the new token
        body = await status(rig.daemon)
        assert body["predictor"]["remote"]["url"].startswith(url_b)
        assert body["models"] == []  # nothing graded yet: the 12-bar horizon has not passed


async def test_a_reloaded_models_dir_loads_and_one_that_does_not_load_is_refused(
    tmp_path: Path, models_dir: Path
) -> None:
    """A models directory added by reload gives the chain its local model; then a directory
    without models refuses the whole reload (the threshold changed with it stays), saying why."""
    async with oracle("tok-A") as (_, url), running(tmp_path, url) as rig:
        good = config_text(tmp_path, sim_url(rig), url, models_dir=models_dir)
        assert (await rig.hup(good)).data["applied"] is True
        assert (await status(rig.daemon))["predictor"]["local"] == ["local-cpu"]
        chain = rig.app.predictor
        bad = config_text(
            tmp_path, sim_url(rig), url, models_dir=tmp_path / "nothing", threshold=0.8
        )
        event = await rig.hup(bad)
        assert event.data["applied"] is False
        assert "ml.models_dir" in event.data["reason"]
        assert rig.app.predictor is chain
        assert rig.daemon.settings.strategy.threshold == 0.6
        assert rig.app.cycle.settings.strategy.threshold == 0.6


async def test_a_reloaded_trade_when_degraded_reaches_the_health_gate(tmp_path: Path) -> None:
    """ml.trade_when_degraded is live: after the reload the gate lets a degraded model trade."""
    async with oracle("tok-A") as (_, url), running(tmp_path, url) as rig:
        monitor = rig.app.cycle.monitor
        assert monitor is not None
        assert monitor.health.trade_when_degraded is False
        text = config_text(tmp_path, sim_url(rig), url, ml={"trade_when_degraded": "true"})
        assert (await rig.hup(text)).data["applied"] is True
        assert monitor.health.trade_when_degraded is True


async def test_a_restart_only_key_refuses_the_reload_naming_it(tmp_path: Path) -> None:
    """A new symbol list with a new threshold and leverage: refused, naming exchange.symbols;
    neither the threshold nor the leverage is applied, on the daemon or on the venue."""
    async with oracle("tok-A") as (_, url), running(tmp_path, url) as rig:
        text = config_text(
            tmp_path,
            sim_url(rig),
            url,
            symbols=[SYMBOL, "ETH/USDT:USDT"],
            threshold=0.8,
            leverage=3,
        )
        event = await rig.hup(text)
        assert event.data["applied"] is False
        assert event.data["restart"] == ["exchange.symbols"]
        assert "exchange.symbols" in event.message
        assert rig.app.cycle.settings.strategy.threshold == 0.6
        await rig.close()
        assert rig.sim.account(DEMO_API_KEY).leverage_of("BTCUSDT") == 1
        assert rig.app.store.positions()[SYMBOL].leverage == Decimal(1)


async def test_a_reload_during_a_cycle_applies_after_it_whole(tmp_path: Path) -> None:
    """While a cycle holds the cycle lock, a reload to service B changes nothing the cycle
    uses; once the lock is free the chain and settings are swapped together, and the next
    close asks B only."""
    async with (
        oracle("tok-A") as (a, url_a),
        oracle("tok-A") as (b, url_b),
        running(tmp_path, url_a) as rig,
    ):
        chain, settings = rig.app.predictor, rig.app.cycle.settings
        async with rig.daemon.cycle_lock:  # as a cycle in flight holds it
            text = config_text(tmp_path, sim_url(rig), url_b, threshold=0.7)
            assert (await rig.hup(text)).data["applied"] is True
            assert rig.app.predictor is chain
            assert rig.app.cycle.predictor is chain
            assert rig.app.cycle.settings is settings
        async with rig.daemon.cycle_lock:  # queued behind the reload's swap (the lock is fair)
            assert rig.app.predictor is not chain
            assert rig.app.cycle.predictor is rig.app.predictor
            assert rig.app.cycle.settings.strategy.threshold == 0.7
        await rig.close()
        assert (a.hits, b.hits) == (0, 1)
