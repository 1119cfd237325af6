"""The one-origin reverse proxy: real Caddy (Debian's package) in front of real upstreams."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from wastetrail.devstack import processes, proxy

pytestmark = pytest.mark.skipif(proxy.caddy() is None,
                                reason="caddy not installed (make bootstrap installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Echo(BaseHTTPRequestHandler):
    """An upstream that says which service it is and what path and body it was given."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = json.dumps({"service": self.server.name,  # type: ignore[attr-defined]
                            "path": self.path, "body_bytes": len(body),
                            "prefix": self.headers.get("x-forwarded-prefix")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    servers = []
    upstreams: dict[str, int] = {}
    for name in ("collection", "billing"):
        port = _free_port()
        server = ThreadingHTTPServer(("127.0.0.1", port), _Echo)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        upstreams[name] = port
    port = _free_port()
    name = f"proxy-test-{port}"
    config = Path(tmp_path_factory.mktemp("proxy")) / "Caddyfile"
    proxy.start(upstreams, port=port, config=config, name=name)
    try:
        assert proxy.wait_ready(port, name=name), (processes.LOG_DIR / f"{name}.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop(name)
        for server in servers:
            server.shutdown()


def test_each_api_is_reached_under_its_prefix_with_the_prefix_stripped(origin: str) -> None:
    r = httpx.get(f"{origin}/api/collection/v1/trips/T-1?limit=5")
    assert r.status_code == 200
    assert r.json() == {"service": "collection", "path": "/v1/trips/T-1?limit=5",
                        "body_bytes": 0, "prefix": "/api/collection"}
    r = httpx.post(f"{origin}/api/billing/v1/payments", content=b"x" * 1000)
    assert r.json() == {"service": "billing", "path": "/v1/payments", "body_bytes": 1000,
                        "prefix": "/api/billing"}


def test_an_unknown_api_is_a_problem_document(origin: str) -> None:
    r = httpx.get(f"{origin}/api/nothing/v1/x")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 404 and "/api/collection/" in problem["detail"]


def test_a_body_over_the_limit_never_reaches_the_service(origin: str) -> None:
    r = httpx.post(f"{origin}/api/collection/v1/loads/batch", content=b"x" * 10_000_000)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413
    r = httpx.post(f"{origin}/api/collection/v1/loads/batch", content=b"x" * 9_999_999)
    assert r.json()["body_bytes"] == 9_999_999


def test_the_root_says_where_the_apis_are(origin: str) -> None:
    r = httpx.get(f"{origin}/")
    assert r.status_code == 200 and "/api/billing/" in r.text
