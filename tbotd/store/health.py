"""Each model's latest health, drift and error-change snapshot, and an hourly drift history.

The daemon writes the snapshot after every grading pass (one row per model and source), so
`tbotd models status` on a stopped or running daemon's database shows what `/status` showed; the
history (at most one row per model per hour, and one at every change of state) feeds the PSI
panel of `tbotd models report`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from tbotd.domain.values import datetime_to_ms, ms_to_datetime

HISTORY_EVERY = timedelta(hours=1)


class HealthRecords:
    """Mixed into :class:`tbotd.store.Store`."""

    db: sqlite_utils.Database

    def save_model_health(self, at: datetime, rows: list[dict[str, Any]]) -> None:
        """Upsert each model's snapshot (``model``, ``source``, ``state``, ``reasons``,
        ``drift``, ``error_change``) and add a history row when due or on a change of state."""
        with self.db.atomic():
            for r in rows:
                key = (r["model"], r["source"])
                old = self.db.execute(
                    "SELECT state FROM model_health WHERE model = ? AND source = ?", key
                ).fetchone()
                last = self.db.execute(
                    "SELECT MAX(at) FROM drift_history WHERE model = ? AND source = ?", key
                ).fetchone()[0]
                self.db.execute(
                    """INSERT OR REPLACE INTO model_health (model, source, state, reasons, drift,
                       error_change, updated_at) VALUES (?,?,?,?,?,?,?)""",
                    (*key, r["state"], json.dumps(r["reasons"]), json.dumps(r["drift"]),
                     json.dumps(r["error_change"]), datetime_to_ms(at)),
                )  # fmt: skip
                changed = old is None or old[0] != r["state"]
                due = last is None or at - ms_to_datetime(last) >= HISTORY_EVERY
                if changed or due:
                    psi = dict(r["drift"].get("top", []))
                    self.db.execute(
                        "INSERT INTO drift_history (at, model, source, state, psi) "
                        "VALUES (?,?,?,?,?)",
                        (datetime_to_ms(at), *key, r["state"], json.dumps(psi)),
                    )

    def model_health(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest snapshot per (model, source)."""
        return {
            (r["model"], r["source"]): {
                "state": r["state"],
                "reasons": json.loads(r["reasons"]),
                "drift": json.loads(r["drift"]),
                "error_change": json.loads(r["error_change"]),
                "updated_at": ms_to_datetime(r["updated_at"]).isoformat(),
            }
            for r in self.db.query("SELECT * FROM model_health")
        }

    def drift_history(self, model: str, source: str) -> list[tuple[datetime, dict[str, float]]]:
        """(time, {feature: PSI of the top features then}) oldest first."""
        return [
            (ms_to_datetime(r["at"]), json.loads(r["psi"]))
            for r in self.db.query(
                "SELECT at, psi FROM drift_history WHERE model = ? AND source = ? ORDER BY at",
                (model, source),
            )
        ]
