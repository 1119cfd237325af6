"""Run the four services (and the VNPay sandbox) as background processes with pid files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from wastetrail.devstack.infra import KAFKA_BOOTSTRAP, PG_PORT, ROOT, principal_env

SERVICES = ("collection", "transfer", "treatment", "billing")
PORTS = {"collection": 8001, "transfer": 8002, "treatment": 8003, "billing": 8004}
SANDBOX_PORT = 8009
RUN_DIR = ROOT / ".local" / "run"
LOG_DIR = ROOT / ".local" / "logs"
# Dev-only merchant credentials for the local VNPay sandbox; real ones come from config.
SANDBOX_TMN_CODE = "WTDEMO01"
SANDBOX_SECRET = "LOCALSANDBOXSECRETNOTFORPRODUCTION0"  # noqa: S105


def database_url(service: str) -> str:
    """The service's own database on the project's PostgreSQL."""
    return f"postgresql+asyncpg://wastetrail@127.0.0.1:{PG_PORT}/wastetrail_{service}"


def service_env(service: str) -> dict[str, str]:
    """The environment a service process runs with."""
    env = dict(os.environ)
    env.update({
        "WASTETRAIL_SERVICE": service,
        "WASTETRAIL_DATABASE_URL": database_url(service),
        "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "WASTETRAIL_HTTP_PORT": str(PORTS[service]),
        "WASTETRAIL_LOCAL_DIR": str(ROOT / ".local"),
        "WASTETRAIL_KEYS_DIR": str(ROOT / ".local" / "keys"),
        "WASTETRAIL_VNPAY_TMN_CODE": SANDBOX_TMN_CODE,
        "WASTETRAIL_VNPAY_HASH_SECRET": SANDBOX_SECRET,
        "WASTETRAIL_VNPAY_PAYMENT_URL": f"http://127.0.0.1:{SANDBOX_PORT}/paymentv2/vpcpay.html",
        "WASTETRAIL_VNPAY_API_URL":
            f"http://127.0.0.1:{SANDBOX_PORT}/merchant_webapi/api/transaction",
        "WASTETRAIL_PUBLIC_URL": f"http://127.0.0.1:{PORTS[service]}",
        **principal_env(service),  # each service its own broker principal (SASL)
    })
    return env


def _pidfile(name: str) -> Path:
    return RUN_DIR / f"{name}.pid"


def running(name: str) -> int | None:
    """The pid of a running process of ours, or None."""
    path = _pidfile(name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return pid


def start(name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start a background process unless it already runs; returns its pid."""
    pid = running(name)
    if pid:
        return pid
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / f"{name}.log").open("ab")
    proc = subprocess.Popen(  # noqa: S603
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )
    _pidfile(name).write_text(str(proc.pid))
    return proc.pid


def start_service(service: str) -> int:
    """Start one service with uvicorn."""
    return start(service, [sys.executable, "-m", "wastetrail.cli", "serve", service],
                 service_env(service))


def start_sandbox() -> int:
    """Start the local VNPay sandbox simulator (dev and demo only)."""
    env = dict(os.environ)
    return start("vnpay-sandbox", [
        sys.executable, "-m", "wastetrail_billing.vnpay_sandbox", "--port", str(SANDBOX_PORT),
        "--tmn-code", SANDBOX_TMN_CODE, "--hash-secret", SANDBOX_SECRET,
        "--ipn-url", f"http://127.0.0.1:{PORTS['billing']}/v1/payments/vnpay/ipn",
    ], env)


def stop(name: str, timeout: float = 15) -> bool:
    """Stop a process of ours (SIGTERM, then SIGKILL); True if one was running."""
    pid = running(name)
    if not pid:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    _pidfile(name).unlink(missing_ok=True)
    return True


def wait_ready(service: str, timeout: float = 120) -> bool:
    """Wait until the service's /readyz says ready."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{PORTS[service]}/readyz"
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if not running(service):
            return False
        time.sleep(0.5)
    return False
