"""The dashboard's config editor changes exactly the keys asked for and keeps the operator's
file otherwise as it was (comments, order)."""

from __future__ import annotations

import tomllib

import pytest

from tbotd.config.edit import EditError, set_key
from tests.conftest import CONFIGS

TEXT = """instance = "x"  # top

[strategy]
threshold = 0.70                   # on the final confidence
k_sl = "1.5"

[strategy.enhance]
mode = "boost"

[ml]
deadline_s = 3.0
"""


def test_a_key_is_replaced_in_place_with_its_comment() -> None:
    """Only the key's line changes; its trailing comment stays."""
    out = set_key(TEXT, "strategy.threshold", 0.75)
    old, new = "threshold = 0.70                   #", "threshold = 0.75  #"
    assert out == TEXT.replace(old, new)
    assert tomllib.loads(out)["strategy"]["threshold"] == 0.75


def test_missing_keys_and_tables_are_added_where_they_belong() -> None:
    """A key absent from its table goes at the table's end; an absent table is appended."""
    out = set_key(TEXT, "strategy.enhance.ml_weight", 0.4)
    out = set_key(out, "ml.model_version", 'v"1')
    out = set_key(out, "strategy.classic.name", "momentum")
    data = tomllib.loads(out)
    assert data["strategy"]["enhance"] == {"mode": "boost", "ml_weight": 0.4}
    assert data["ml"]["model_version"] == 'v"1'
    assert data["strategy"]["classic"]["name"] == "momentum"
    assert data["strategy"]["threshold"] == 0.70
    assert out.startswith('instance = "x"  # top\n')


def test_every_shipped_config_survives_an_edit() -> None:
    """Setting a strategy key in each shipped config leaves valid TOML with only that change."""
    for path in sorted(CONFIGS.glob("*.toml")):
        text = path.read_text()
        out = set_key(text, "strategy.threshold", 0.61)
        before, after = tomllib.loads(text), tomllib.loads(out)
        assert after["strategy"].pop("threshold") == 0.61, path.name
        before["strategy"].pop("threshold", None)
        assert after == before, path.name


def test_keys_outside_a_table_or_odd_values_are_refused() -> None:
    """A top-level key or a value TOML cannot hold here is an EditError, not a broken file."""
    with pytest.raises(EditError, match="not a key inside"):
        set_key(TEXT, "instance", "y")
    with pytest.raises(EditError, match="unsupported value"):
        set_key(TEXT, "strategy.threshold", {"a": 1})
