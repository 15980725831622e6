"""The running daemon grades its predictions after each close (against `tbotd sim` and a remote
ML service without a manifest) and `/status` shows the rolling metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from tbotd.daemon.status import status
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
from tests.integration.reload_support import oracle, running

HORIZON = 12  # no manifest for the remote "oracle" model: the training default


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exchange keys and the ML token come from the environment, as in production."""
    monkeypatch.setenv("TBOTD_EXCHANGE__API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("TBOTD_EXCHANGE__API_SECRET", DEMO_API_SECRET)
    monkeypatch.setenv("BASIS_ML_API_TOKEN", "tok-A")


async def test_each_close_grades_the_predictions_whose_horizon_passed_once(
    tmp_path: Path,
) -> None:
    """15 closes of remote predictions: the first 3 are graded (once each, with the default
    horizon said in the row), the cycle reports the pass's time, `/status` lists the model."""
    async with oracle("tok-A") as (_, url), running(tmp_path, url, mode="paper") as rig:
        for _ in range(HORIZON + 3):
            await rig.close()
        store = rig.app.store
        rows = store.query("SELECT prediction_id, label_origin, horizon FROM outcomes")
        assert len(rows) == 3
        assert len({r["prediction_id"] for r in rows}) == 3
        assert {(r["label_origin"], r["horizon"]) for r in rows} == {("default", HORIZON)}
        assert rig.app.cycle.last is not None
        assert "monitor" in rig.app.cycle.last.timings_ms
        (model,) = (await status(rig.daemon))["models"]
        assert (model["name"], model["source"], model["n_scored"]) == ("oracle", "remote", 3)
        assert model["rolling"]["50"]["hit_rate"]["status"] == "n too small"
