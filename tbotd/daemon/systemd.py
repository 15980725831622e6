"""systemd's notify protocol (sd_notify) without a dependency: one datagram per message.

READY=1 after recovery, WATCHDOG=1 from its own task (so a long backoff in the cycle never trips
the watchdog), STATUS= with the last cycle, STOPPING=1 on shutdown. Outside systemd (no
``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

from tbotd.ops.logs import get_logger

log = get_logger(__name__)


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` when systemd gave us one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        self._address = address or None
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s = (
            int(watchdog_usec) / 2_000_000 if watchdog_usec.isdigit() else None
        )

    @property
    def enabled(self) -> bool:
        """True under systemd with Type=notify."""
        return self._address is not None

    def send(self, **fields: str) -> None:
        """Send ``KEY=value`` lines (e.g. ``send(READY="1", STATUS="recovered")``)."""
        if self._address is None:
            return
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as e:
            log.warning("sd_notify failed", error=str(e))

    def ready(self, status: str) -> None:
        """Recovery is done; start scheduling."""
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        """Free-text status shown by `systemctl status`."""
        self.send(STATUS=status)

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.send(STOPPING="1", STATUS="stopping")

    async def watchdog_forever(self) -> None:
        """Ping the watchdog at half its interval, from a task of its own."""
        if self.watchdog_interval_s is None or not self.enabled:
            return
        while True:
            self.send(WATCHDOG="1")
            await asyncio.sleep(self.watchdog_interval_s)
