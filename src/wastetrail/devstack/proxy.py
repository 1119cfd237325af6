"""One origin for people: Caddy (Debian's package) in front of the four services.

``http://127.0.0.1:8000/api/<service>/...`` reaches the service at its root path (the
prefix is stripped), so the services keep their own paths and OpenAPI documents and a web
app can call every API on its own origin, without CORS. The proxy also bounds request
bodies before any service reads them. Caddy's admin endpoint and automatic HTTPS are off:
this is the loopback development stack; a deployment puts its own TLS in front.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from wastetrail.devstack import processes
from wastetrail.devstack.infra import ROOT

PROXY_PORT = 8000
# The largest body a request may carry: 10,000,000 bytes (photos come with the field app).
# A declared Content-Length of 8 digits or more is refused with 413 before any service
# reads it; a chunked body is cut at the same size (Caddy 2.6 then answers 502).
MAX_BODY = "10MB"
TOO_LARGE = r"^[1-9][0-9]{7,}$"
CONFIG = ROOT / ".local" / "proxy" / "Caddyfile"


def caddyfile(upstreams: Mapping[str, int], port: int = PROXY_PORT,
              max_body: str = MAX_BODY) -> str:
    """The Caddyfile: ``/api/<service>/*`` → ``127.0.0.1:<port>`` with the prefix stripped."""
    routes = "\n".join(
        f"\thandle_path /api/{name}/* {{\n\t\treverse_proxy 127.0.0.1:{upstream} {{\n"
        f"\t\t\theader_up X-Forwarded-Prefix /api/{name}\n\t\t}}\n\t}}"
        for name, upstream in sorted(upstreams.items()))
    names = ", ".join(f"/api/{name}/" for name in sorted(upstreams))
    problem = ('{"type":"about:blank","title":"Not Found","status":404,'
               f'"detail":"no such API; the APIs are {names}"}}')
    too_large = ('{"type":"about:blank","title":"Content Too Large","status":413,'
                 '"detail":"a request body may carry at most 10,000,000 bytes"}')
    return f"""{{
\tadmin off
\tauto_https off
}}

http://127.0.0.1:{port} {{
\t@too_large header_regexp Content-Length {TOO_LARGE}
\thandle @too_large {{
\t\theader Content-Type application/problem+json
\t\trespond `{too_large}` 413
\t}}
\trequest_body {{
\t\tmax_size {max_body}
\t}}
{routes}
\thandle /api/* {{
\t\theader Content-Type application/problem+json
\t\trespond `{problem}` 404
\t}}
\thandle {{
\t\trespond "WasteTrail: the APIs are under {names} (OpenAPI at /api/<service>/docs)" 200
\t}}
}}
"""


def caddy() -> str | None:
    """The caddy binary, if installed (deploy/local/bootstrap.sh installs Debian's)."""
    return shutil.which("caddy")


def start(upstreams: Mapping[str, int] | None = None, port: int = PROXY_PORT,
          config: Path = CONFIG, name: str = "proxy") -> int:
    """Write the config and start Caddy in the background (idempotent); returns its pid."""
    binary = caddy()
    if binary is None:
        raise RuntimeError("caddy is not installed: run `make bootstrap`")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(caddyfile(upstreams or processes.PORTS, port), encoding="utf-8")
    env = {"HOME": str(config.parent), "XDG_DATA_HOME": str(config.parent / "data"),
           "XDG_CONFIG_HOME": str(config.parent / "config"), "PATH": "/usr/bin:/bin"}
    return processes.start(name, [binary, "run", "--config", str(config),
                                  "--adapter", "caddyfile"], env)


def wait_ready(port: int = PROXY_PORT, timeout: float = 30, name: str = "proxy") -> bool:
    """Wait until the proxy answers on its port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return True
        except httpx.HTTPError:
            if not processes.running(name):
                return False
            time.sleep(0.2)
    return False
