"""The running daemon and its models directory: a promoted version is used by the next
prediction without a restart, a broken directory put in by hand is refused with an event while
the old model keeps predicting, and the retrain worker's events are recorded."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tbotd.config.retrain import RetrainConfig
from tbotd.daemon import retrain
from tbotd.daemon.retrain import check_models_dir, models_forever, retrain_due, run_worker
from tbotd.domain.notices import EventRecord
from tbotd.ml import versions
from tbotd.ml.versions import Layout, fingerprint
from tbotd.sim import DEMO_API_KEY, DEMO_API_SECRET
from tests.integration.reload_support import Rig, running
from tests.retrain_support import add_version, copy_model, killed_switch

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sim's demo account (the market data comes from it)."""
    monkeypatch.setenv("TBOTD_EXCHANGE__API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("TBOTD_EXCHANGE__API_SECRET", DEMO_API_SECRET)


def _latest(rig: Rig) -> tuple[str, str]:
    row = rig.app.store.query(
        "SELECT model_version, source FROM predictions ORDER BY candle_time DESC LIMIT 1"
    )[0]
    return row["model_version"], row["source"]


def test_a_retrain_is_due_every_every_h_of_monotonic_time_and_never_when_off() -> None:
    """Due once every_h hours have passed since the last round; every_h None: never."""
    assert not retrain_due(1.0, last=100.0, now=100.0 + 3599)
    assert retrain_due(1.0, last=100.0, now=100.0 + 3600)
    assert not retrain_due(None, last=0.0, now=1e12)


async def test_a_promoted_version_is_used_by_the_next_prediction(
    tmp_path: Path, models_dir: Path
) -> None:
    """Switching the live link (what a promotion does) reloads the chain between closes: the
    next prediction carries the new model_version, with no restart."""
    live = copy_model(models_dir, tmp_path / "models", version="champion", any_market=True)
    versions.adopt(live, "champion")
    async with running(tmp_path, "", models_dir=live, mode="paper") as rig:
        await rig.close()
        assert _latest(rig) == ("champion", "local-cpu")
        seen = fingerprint(live)
        versions.switch(live, add_version(live, models_dir, "challenger", any_market=True))
        await check_models_dir(rig.daemon, rig.app, seen)
        await rig.close()
        assert _latest(rig) == ("challenger", "local-cpu")
        assert "models-reloaded" in rig.kinds()


async def test_a_broken_models_dir_put_in_by_hand_is_refused_and_the_old_model_predicts(
    tmp_path: Path, models_dir: Path
) -> None:
    """A models directory replaced by hand with a corrupt weights file is checked like at
    start-up, refused with a `models-dir-refused` event naming the file, and the running model
    keeps answering."""
    live = copy_model(models_dir, tmp_path / "models", version="champion", any_market=True)
    async with running(tmp_path, "", models_dir=live, mode="paper") as rig:
        await rig.close()
        seen = fingerprint(live)
        shutil.rmtree(live)
        copy_model(models_dir, live, version="by-hand")
        (live / "direction.safetensors").write_bytes(b"not the trained weights")
        await check_models_dir(rig.daemon, rig.app, seen)
        refused = rig.app.store.query("SELECT data FROM events WHERE kind = 'models-dir-refused'")
        assert len(refused) == 1
        assert "direction.safetensors" in json.loads(refused[0]["data"])["reason"]
        await rig.close()
        assert _latest(rig) == ("champion", "local-cpu")


_WORKER = """
import json, sys
from pathlib import Path
from tbotd.ml import versions
def emit(kind, **data):
    print(json.dumps({"kind": kind, "message": kind, "data": data}), flush=True)
emit("retrain-started", symbol="BTC/USDT:USDT")
print("a line that is not an event", flush=True)
emit("retrain-evaluated", champion={"log_loss": 1.0}, challenger={"log_loss": 0.9})
versions.switch(Path(sys.argv[1]), "challenger")
emit("retrain-promoted", to="challenger")
"""


async def test_the_workers_events_are_recorded_and_its_promotion_reloads_the_models(
    tmp_path: Path, models_dir: Path
) -> None:
    """The daemon runs the worker as a subprocess, records each event line it prints (the
    store's listeners hear them), then loads the version it promoted."""
    live = copy_model(models_dir, tmp_path / "models", version="champion", any_market=True)
    versions.adopt(live, "champion")
    add_version(live, models_dir, "challenger", any_market=True)
    async with running(tmp_path, "", models_dir=live, mode="paper") as rig:
        seen = fingerprint(live)
        argv = [sys.executable, "-c", _WORKER, str(live)]
        assert await run_worker(rig.daemon, rig.app, argv) == 0
        kinds = [k for k in rig.kinds() if k.startswith("retrain-")]
        assert kinds == ["retrain-started", "retrain-evaluated", "retrain-promoted"]
        await check_models_dir(rig.daemon, rig.app, seen)
        await rig.close()
        assert _latest(rig) == ("challenger", "local-cpu")
        assert await run_worker(rig.daemon, rig.app, [sys.executable, "-c", "exit(3)"]) == 3
        assert rig.kinds()[-1] == "retrain-failed"


async def test_every_every_h_the_daemon_retrains_and_the_next_close_uses_the_promoted_model(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's task, once every_h has passed on the monotonic clock, starts the worker,
    records its events and reloads the model it promoted; the next prediction carries it."""
    live = copy_model(models_dir, tmp_path / "models", version="champion", any_market=True)
    versions.adopt(live, "champion")
    add_version(live, models_dir, "challenger", any_market=True)
    monkeypatch.setattr(
        retrain, "worker_argv", lambda _: [sys.executable, "-c", _WORKER, str(live)]
    )
    async with running(tmp_path, "", models_dir=live, mode="paper") as rig:
        settings = rig.daemon.settings
        ml = settings.ml.model_copy(update={"retrain": RetrainConfig(every_h=1.0)})
        rig.daemon.settings = settings.model_copy(update={"ml": ml})
        reloaded: asyncio.Queue[EventRecord] = asyncio.Queue()
        rig.app.store.add_event_listener(
            lambda e: reloaded.put_nowait(e) if e.kind == "models-reloaded" else None
        )
        hours = itertools.chain([0.0], itertools.repeat(3_600.0))  # one round is due
        task = asyncio.create_task(models_forever(rig.daemon, rig.app, lambda: next(hours), 0.01))
        try:
            await asyncio.wait_for(reloaded.get(), 60)
        finally:
            task.cancel()
        assert [k for k in rig.kinds() if k.startswith("retrain-")] == [
            "retrain-started",
            "retrain-evaluated",
            "retrain-promoted",
        ]
        await rig.close()
        assert _latest(rig) == ("challenger", "local-cpu")


@pytest.mark.parametrize(("step", "version"), [("swap-previous", "old"), ("swap-live", "new")])
async def test_a_daemon_started_after_a_killed_switch_recovers_it_and_predicts_whole(
    tmp_path: Path, models_dir: Path, step: str, version: str
) -> None:
    """A switch killed before the live link moved is undone at start-up, one killed after it is
    completed: the daemon loads and predicts with that one version, the journal gone."""
    live = copy_model(models_dir, tmp_path / "models", version="old", any_market=True)
    Layout(live).versions.mkdir()
    add_version(live, models_dir, "new", any_market=True)
    done = killed_switch(live, step)
    assert done.returncode == -signal.SIGKILL
    assert Layout(live).journal.exists()
    async with running(tmp_path, "", models_dir=live, mode="paper") as rig:
        assert not Layout(live).journal.exists()
        await rig.close()
        assert _latest(rig) == (version, "local-cpu")
