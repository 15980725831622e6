"""Secrets given through config never reach log output, whatever path a log line takes."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from tbotd.config import load_settings
from tbotd.ops.logs import LineBudget, configure_for, get_logger
from tests.conftest import CONFIGS

SECRETS = {
    "TBOTD_EXCHANGE__API_KEY": "PLANTED-exchange-key-8f3a",
    "TBOTD_EXCHANGE__API_SECRET": "PLANTED-exchange-secret-91bc",
    "BASIS_ML_API_TOKEN": "PLANTED-ml-token-77de",
    "TBOTD_OPS__TOKEN": "PLANTED-ops-token-4410-long-enough",
}


def _fail(message: str) -> None:
    raise ConnectionError(message)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_configured_secrets_never_appear_in_logs(fmt: str) -> None:
    """Messages, fields, nested data, exceptions and stdlib records are all scrubbed."""
    settings = load_settings(
        CONFIGS / "ml_usdt_directional.toml", {**SECRETS, "TBOTD_LOG__FORMAT": fmt}
    )
    out = io.StringIO()
    configure_for(settings, out)
    log = get_logger("test")
    key = SECRETS["TBOTD_EXCHANGE__API_KEY"]
    token = SECRETS["BASIS_ML_API_TOKEN"]
    message = "signing with " + key
    log.info(message, detail={"headers": {"X": f"Bearer {token}"}}, items=[key])
    log.warning("request", apikey=key, authorization=f"Bearer {token}")
    try:
        _fail(f"refused for secret {SECRETS['TBOTD_EXCHANGE__API_SECRET']}")
    except ConnectionError:
        log.exception("remote failed")
    logging.getLogger("ccxt.base").error(
        "GET /x?signature=abc&token=%s", SECRETS["TBOTD_OPS__TOKEN"]
    )
    log.info("config", config=settings.model_dump())
    text = out.getvalue()
    assert len(text.splitlines()) >= 5
    for value in SECRETS.values():
        assert value not in text
    assert "PLANTED" not in text
    assert "***" in text


def test_json_lines_when_not_a_terminal() -> None:
    """With format auto and a non-terminal stream, each line is one JSON object."""
    settings = load_settings(CONFIGS / "ml_usdt_directional.toml", {})
    out = io.StringIO()
    configure_for(settings, out)
    get_logger("test").info("cycle", symbol="BTC/USDT:USDT", latency_ms=3.2)
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["event"] == "cycle"
    assert line["level"] == "info"
    assert line["latency_ms"] == 3.2


def test_credential_named_fields_are_masked_even_unregistered(tmp_path: Path) -> None:
    """A field named like a credential is masked even if its value was never configured."""
    settings = load_settings(CONFIGS / "ml_usdt_directional.toml", {})
    out = io.StringIO()
    configure_for(settings, out)
    get_logger("test").info("x", password="hunter2", listen_key="lk-abc", client_secret="s")
    assert "hunter2" not in out.getvalue()
    assert "lk-abc" not in out.getvalue()


def test_a_flood_of_log_lines_is_cut_to_a_budget_and_counted() -> None:
    """100 lines in a second from a budgeted logger: 10 kept; the next window's first line says
    how many were dropped."""
    budget = LineBudget(lines=10, window_s=60.0)
    records = [
        logging.LogRecord("aiohttp.server", logging.ERROR, "x", 1, "bad request", None, None)
        for _ in range(100)
    ]
    for k, record in enumerate(records):
        record.created = 1000.0 + k / 100
    kept = [r for r in records if budget.filter(r)]
    assert len(kept) == 10
    later = logging.LogRecord("aiohttp.server", logging.ERROR, "x", 1, "bad request", None, None)
    later.created = 1061.0
    assert budget.filter(later)
    assert "90 similar lines dropped" in str(later.msg)
