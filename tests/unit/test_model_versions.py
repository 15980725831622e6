"""Model versions: the promotion rule, the atomic switch killed at every step, rollback."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest

from tbotd.ml.challenger import Score, Verdict, decide, score
from tbotd.ml.manifest import MANIFEST_NAME
from tbotd.ml.versions import ADOPT_STEPS, SWAP_STEPS, Layout, recover
from tbotd.predictor.local import LocalPredictor
from tbotd.store import Store
from tests.conftest import RunTbotd
from tests.retrain_support import add_version, copy_model, killed_switch, retrain_config


def _version(path: Path) -> str:
    with LocalPredictor.load(path, "cpu") as model:  # checks the manifest and every sha256
        return model.model_version


def test_log_loss_and_hit_rate_are_those_of_the_realised_classes() -> None:
    """The score is the mean -log p(realised class); the hit rate counts non-neutral calls."""
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.6, 0.2]])
    result = score(probs, np.array([0, 0, 1]))
    assert result.n == 3
    assert math.isclose(result.log_loss, -(math.log(0.7) + math.log(0.1) + math.log(0.6)) / 3)
    assert result.hit_rate == 0.5


def test_a_challenger_is_promoted_only_when_better_by_the_margin() -> None:
    """Equal or slightly better keeps the champion; better by the margin promotes."""
    champion = Score(1_000, 1.000, 0.5)
    assert decide(champion, Score(1_000, 0.999, 0.5), 0.002, 500).verdict is Verdict.KEEP
    assert decide(champion, Score(1_000, 1.010, 0.6), 0.002, 500).verdict is Verdict.KEEP
    promoted = decide(champion, Score(1_000, 0.990, 0.5), 0.002, 500)
    assert promoted.verdict is Verdict.PROMOTE
    assert "0.99000 vs 1.00000" in promoted.reason


def test_too_few_scored_bars_keep_the_champion_and_say_what_to_do() -> None:
    """A challenger scored on fewer bars than min_scored is not promoted, however good."""
    decision = decide(Score(1_000, 1.0, 0.5), Score(100, 0.1, 0.9), 0.002, 500)
    assert decision.verdict is Verdict.KEEP
    assert "ml.retrain.min_scored" in decision.reason


def test_a_live_model_that_does_not_load_is_replaced_by_any_scoring_challenger() -> None:
    """No champion: the challenger wins without a comparison."""
    assert decide(None, Score(1_000, 1.05, 0.4), 0.002, 500).verdict is Verdict.PROMOTE


@pytest.mark.parametrize("step", [*ADOPT_STEPS, *SWAP_STEPS])
def test_a_switch_killed_at_any_step_leaves_one_whole_model_after_recovery(
    tmp_path: Path, models_dir: Path, step: str
) -> None:
    """SIGKILL at each step of adopting and switching, then recovery: the live directory loads
    (every file's sha256 checked) and is the old model or the new one, never a mix."""
    live = copy_model(models_dir, tmp_path / "models", version="old")
    Layout(live).versions.mkdir()
    add_version(live, models_dir, "new")
    done = killed_switch(live, step)
    assert done.returncode == -signal.SIGKILL, done.stderr
    recover(live)
    assert _version(live) in {"old", "new"}
    assert live.is_symlink() or (live / MANIFEST_NAME).is_file()
    assert not Layout(live).journal.exists()
    if _version(live) == "new":  # a finished switch keeps the old one for a rollback
        assert Layout(live).previous_name() == "old"


def test_rollback_makes_the_previous_version_live_and_records_an_event(
    tmp_path: Path, models_dir: Path, run_tbotd: RunTbotd
) -> None:
    """`tbotd models rollback` swaps live and previous (an event, and `tbotd models status`
    shows which version is live and which is previous)."""
    live = copy_model(models_dir, tmp_path / "models", version="old")
    from tbotd.ml import versions

    versions.adopt(live, "old")
    versions.switch(live, add_version(live, models_dir, "new"))
    config = retrain_config(tmp_path, live)
    Store.open(tmp_path / "tbotd.sqlite").close()
    done = run_tbotd("models", "rollback", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert _version(live) == "old"
    assert Layout(live).previous_name() == "new"
    store = Store.open(tmp_path / "tbotd.sqlite")
    try:
        events = store.query("SELECT kind, message FROM events WHERE kind = 'model-rollback'")
    finally:
        store.close()
    assert [e["message"] for e in events] == ["old is live again (was new)"]
    shown = run_tbotd("models", "status", "--json", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["local"] == {
        "models_dir": str(live),
        "live_version": "old",
        "previous_version": "new",
        "versions": ["new", "old"],
    }
    text = run_tbotd("models", "status", "--config", str(config)).stdout
    assert f"{live} -> old (previous: new; 2 kept)" in text


def test_rollback_without_a_previous_version_says_what_to_do(
    tmp_path: Path, models_dir: Path, run_tbotd: RunTbotd
) -> None:
    """A models directory never switched has nothing to roll back to: exit 1, live untouched."""
    live = copy_model(models_dir, tmp_path / "models", version="only")
    done = run_tbotd("models", "rollback", "--config", str(retrain_config(tmp_path, live)))
    assert done.returncode == 1
    assert "no previous model version" in done.stderr
    assert _version(live) == "only"
    assert not live.is_symlink()
