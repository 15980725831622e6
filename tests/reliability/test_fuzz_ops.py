"""The ops HTTP endpoint under random requests: never a 5xx, never anything but health without
the token.

The real :class:`~tbotd.ops.http.OpsServer` runs in a thread with its own event loop; hypothesis
writes raw HTTP to it over a socket (methods, paths, headers, bodies — malformed ones included),
so what is tested is what a client on the network could send.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from tbotd.ops.guard import RequestBudget
from tbotd.ops.http import OpsServer

TOKEN = "PLANTED-ops-token-31e8b0"
SECRET_STATUS = {"positions": [], "equity": {"balance": "10000"}, "instance": "fuzz"}
EXAMPLES = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
HEALTH_BODY = {"ok": True}
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class Running:
    """An OpsServer serving in a background thread."""

    def __init__(self, token: str | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        registry = CollectorRegistry()
        Counter("tbotd_fuzz_total", "a metric", registry=registry).inc()

        async def status() -> dict[str, Any]:
            return SECRET_STATUS

        self.server = OpsServer("127.0.0.1", 0, token, registry, status, lambda: (True, "ok"))
        self.server.budget = RequestBudget(rate_per_s=1e9, burst=1e9)  # every input reaches auth
        url = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.port = int(url.rsplit(":", 1)[1])

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def guarded() -> Iterator[Running]:
    """The endpoint with an ops token."""
    running = Running(TOKEN)
    yield running
    running.close()


@pytest.fixture(scope="module")
def open_loopback() -> Iterator[Running]:
    """The endpoint without a token (allowed on loopback only)."""
    running = Running(None)
    yield running
    running.close()


def send(port: int, raw: bytes) -> tuple[int, bytes]:
    """Write ``raw`` and read the whole answer: (status, body); status 0 when none came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, body


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]) | st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8
)
paths = st.sampled_from(
    [
        "/healthz",
        "/readyz",
        "/metrics",
        "/status",
        "/status/",
        "//status",
        "/STATUS",
        "/status?x=1",
        "/healthz/../status",
        "/%73tatus",
        "/healthz%00",
        "*",
        "http://127.0.0.1/status",
    ]
) | st.text(min_size=0, max_size=40).map(lambda t: "/" + t)
auths = st.sampled_from(
    [
        None,
        f"Bearer {TOKEN}",
        f"bearer {TOKEN}",
        f"Bearer {TOKEN} ",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"Basic {TOKEN}",
        TOKEN,
    ]
) | st.text(max_size=40)
header_names = st.text(
    "abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=20
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str | None, bytes]:
    """(method, path, Authorization value, raw request bytes)."""
    method, path, auth = draw(methods), draw(paths), draw(auths)
    body = draw(st.binary(max_size=200))
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    extra = draw(st.lists(st.tuples(header_names, st.text(max_size=30)), max_size=3))
    lines += [f"{name}: {value}" for name, value in extra]
    if draw(st.integers(0, 9)):  # now and then no length: the body is then a second request
        lines += [f"Content-Length: {len(body)}"]
    lines += ["Connection: close"]
    head = "\r\n".join(lines) + "\r\n\r\n"
    return method, path, auth, head.encode("utf-8", "surrogateescape") + body


@EXAMPLES
@given(requests())
def test_random_requests_never_break_it_or_get_past_the_token(
    guarded: Running, request: tuple[str, str, str | None, bytes]
) -> None:
    """Any request: an answer below 500; a 200 without the exact token is only ever /healthz's
    body; and the server keeps answering."""
    _method, _path, auth, raw = request
    status, body = send(guarded.port, raw)
    assert 0 < status < 500, (status, body[:200])
    authorized = auth is not None and auth.strip(" \t") == f"Bearer {TOKEN}"  # HTTP trims OWS
    if status == 200 and not authorized:
        assert not body or json.loads(body) == HEALTH_BODY
    assert TOKEN.encode() not in body
    assert send(guarded.port, HEALTH)[0] == 200


@EXAMPLES
@given(requests())
def test_random_requests_to_an_open_loopback_endpoint_never_break_it(
    open_loopback: Running, request: tuple[str, str, str | None, bytes]
) -> None:
    """Without a token (loopback only) any request still gets an answer below 500."""
    status, body = send(open_loopback.port, request[3])
    assert 0 < status < 500, (status, body[:200])
    assert send(open_loopback.port, HEALTH)[0] == 200


def test_every_route_but_health_needs_the_token(guarded: Running) -> None:
    """/readyz, /metrics and /status answer 401 without the token and 200 with it."""
    for path in ("/readyz", "/metrics", "/status"):
        assert (
            send(
                guarded.port,
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )[0]
            == 401
        )
        authed = (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Connection: close\r\n\r\n"
        )
        assert send(guarded.port, authed.encode())[0] == 200
    assert send(guarded.port, HEALTH)[0] == 200
