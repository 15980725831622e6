"""What a reload must do, decided purely from the old and the new settings: every changed key
is live or restart-only, a restart-only one refuses them all, secrets never show."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from tbotd.config import Settings, load_settings
from tbotd.config.scope import Applies, applies, effective, plan_reload
from tests.conftest import CONFIGS

BASE = load_settings(CONFIGS / "ml_usdt_directional.toml", {})


def changed(**sections: dict[str, Any]) -> Settings:
    """BASE with some keys of some sections changed."""
    update = {name: getattr(BASE, name).model_copy(update=keys) for name, keys in sections.items()}
    return BASE.model_copy(update=update)


def test_leverage_and_costs_are_applied_live_by_retuning_the_broker() -> None:
    """Leverage, position fraction and fees change live: the broker is retuned, no restart."""
    new = changed(execution={"leverage": 3, "taker_fee_bps": 4, "position_fraction": 0.5})
    plan = plan_reload(BASE, new)
    assert plan.applies
    assert (plan.retune_broker, plan.rebuild_ml) == (True, False)
    assert "execution.leverage: 1 -> 3" in plan.changes


def test_margin_mode_and_trading_mode_need_a_restart_and_refuse_the_rest() -> None:
    """A margin-mode change (the venue refuses it with a position open) or a paper→live switch
    is named as restart-only, so nothing of the reload is applied."""
    new = changed(execution={"margin_mode": "cross", "leverage": 2})
    plan = plan_reload(BASE, new)
    assert plan.restart == ("execution.margin_mode",)
    assert not plan.applies
    assert applies("execution.mode") is Applies.RESTART


def test_ml_changes_rebuild_the_chain_unless_the_predictor_was_injected() -> None:
    """Any ml key rebuilds the predictor chain; a daemon given its predictor cannot rebuild
    it, so there the same change is restart-only, named."""
    new = changed(ml={"remote_url": "http://127.0.0.1:9/", "deadline_s": 2.0})
    assert plan_reload(BASE, new).rebuild_ml
    assert plan_reload(BASE, new).applies
    injected = plan_reload(BASE, new, ml_live=False)
    assert injected.restart == ("ml.remote_url", "ml.deadline_s")


def test_a_rotated_token_is_a_change_shown_masked() -> None:
    """Two different tokens both show as the mask, yet the rotation is a change (the chain is
    rebuilt with it) and the token itself appears nowhere."""
    old = changed(ml={"token": SecretStr("tok-OLD-123")})
    new = changed(ml={"token": SecretStr("tok-NEW-456")})
    plan = plan_reload(old, new)
    assert plan.changes == ("ml.token: ******** -> ********",)
    assert plan.rebuild_ml
    assert "tok-" not in repr(plan)


def test_the_dashboard_labels_match_what_a_reload_does() -> None:
    """Every key the dashboard labels live is one a reload applies; restart-only keys are
    exactly the unrebuilt sections plus execution.mode and execution.margin_mode."""
    rows = effective(BASE)
    restart = {r["key"] for r in rows if r["applies"] == Applies.RESTART.value}
    assert {"execution.mode", "execution.margin_mode", "exchange.symbols"} <= restart
    assert not {k for k in restart if k.split(".")[0] in ("strategy", "risk", "log", "ml")}
    assert not {k for k in restart if k.startswith("execution.")} - {
        "execution.mode",
        "execution.margin_mode",
    }


def test_a_retrain_schedule_change_is_live_without_reloading_the_models() -> None:
    """`[ml.retrain]` is read at each round: changing it applies live and leaves the chain."""
    from tbotd.config.retrain import RetrainConfig

    new = changed(ml={"retrain": RetrainConfig(every_h=12)})
    plan = plan_reload(BASE, new)
    assert plan.applies
    assert not plan.rebuild_ml
    assert any(c.startswith("ml.retrain.every_h") for c in plan.changes)
