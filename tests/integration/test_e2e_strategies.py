"""`tbotd run` against `tbotd sim` for each strategy kind beyond the ML directional one (which
test_e2e_daemon.py runs): classic rules alone, and a classic strategy with the ML layer over it.
Cycles run, each candle is decided once, decisions record their strategy and provenance, and
every entry is protected on the venue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CONFIGS
from tests.e2e_support import oracle, sim_process, spawn
from tests.integration.test_e2e_daemon import (
    CYCLES,
    SPEED,
    admin,
    assert_entries_protected,
    assert_one_decision_per_candle,
    daemon_env,
    rows,
    run_until,
)

pytestmark = pytest.mark.slow
KINDS = {
    "classic_momentum.toml": ("classic:momentum", {"classic_only"}),
    "ml_enhanced_momentum.toml": (
        "ml_enhanced:filter:momentum",
        {"ml_confirmed", "vetoed", "ml_abstained", "classic_only"},
    ),
    "ml_enhanced_mean_reversion.toml": (
        "ml_enhanced:boost:mean_reversion",
        {"boosted", "reduced", "ml_abstained", "classic_only"},
    ),
}


@pytest.mark.parametrize("config", sorted(KINDS))
async def test_each_kind_runs_against_the_sim(config: str, tmp_path: Path) -> None:
    """20+ accelerated cycles in paper mode with the config's strategy kind."""
    name, provenances = KINDS[config]
    async with oracle() as ml_url, sim_process("--speed", SPEED, "--seed", "3") as (_sim, url):
        env = daemon_env(tmp_path, url, ml_url, "paper")
        env["TBOTD_STRATEGY__MAX_ENTRIES_PER_HOUR"] = "12"
        daemon = await spawn("run", "--config", str(CONFIGS / config), env=env)
        await run_until(daemon, CYCLES)
        admin(url, "/sim/clock", {"running": False})
        assert await daemon.stop() == 0
    db = Path(env["TBOTD_STORE__PATH"])
    assert_one_decision_per_candle(db)
    decisions = rows(db, "SELECT * FROM decisions ORDER BY candle_time")
    assert {d["strategy"] for d in decisions} == {name}
    assert {d["provenance"] for d in decisions} <= provenances
    for d in decisions:
        result = json.loads(d["result"])
        assert result["direction"] in {"long", "short", "flat", "abstain"}
        assert json.loads(d["base"])["reasons"], "the classic signal says why"
    if name.startswith("ml_enhanced"):
        assert all(json.loads(d["ml"])["reasons"] for d in decisions)
    if name != "ml_enhanced:boost:mean_reversion":  # mean reversion may see no setup in 20
        assert_entries_protected(db)
