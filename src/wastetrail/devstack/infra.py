"""Start, stop and probe the project's own Kafka and PostgreSQL on loopback.

Thin wrappers over ``deploy/local/*.sh`` so that ``make``, the CLI and the test fixtures
share one implementation.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "local"
KAFKA_BOOTSTRAP = f"127.0.0.1:{os.environ.get('WASTETRAIL_KAFKA_PORT', '9092')}"
PG_PORT = int(os.environ.get("WASTETRAIL_PG_PORT", "55432"))
PG_ADMIN_URL = f"postgresql://wastetrail@127.0.0.1:{PG_PORT}/postgres"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def kafka_credentials() -> Path | None:
    """The directory of the local SASL broker's passwords (one file per principal), when
    the local broker runs with SASL (kafka.sh marks its log directory; or
    ``WASTETRAIL_KAFKA_SASL=1``); None for a PLAINTEXT broker."""
    local = Path(os.environ.get("WASTETRAIL_LOCAL_DIR") or ROOT / ".local")
    flag = os.environ.get("WASTETRAIL_KAFKA_SASL")
    if flag == "0" or (flag != "1" and not (local / "kafka" / "sasl").is_file()):
        return None
    return local / "kafka-credentials"


def principal_env(name: str) -> dict[str, str]:
    """WASTETRAIL_KAFKA_USERNAME/PASSWORD of one principal of the local SASL broker ({}
    without SASL): every client reads them (``topics.kafka_client_options``)."""
    directory = kafka_credentials()
    if directory is None:
        return {}
    return {"WASTETRAIL_KAFKA_USERNAME": name,
            "WASTETRAIL_KAFKA_PASSWORD": (directory / name).read_text().strip()}


def kafka_answers() -> bool:
    """Whether something listens on the local broker's port."""
    host, port = KAFKA_BOOTSTRAP.split(":")
    return _answers(host, int(port))


def postgres_answers() -> bool:
    """Whether something listens on the project's PostgreSQL port."""
    return _answers("127.0.0.1", PG_PORT)


def run_script(name: str, *args: str) -> None:
    """Run one of deploy/local's scripts, failing loudly with its output."""
    subprocess.run(["bash", str(DEPLOY / name), *args], check=True)  # noqa: S603, S607


def ensure_kafka() -> str:
    """Start the local broker if it is not running; return its bootstrap address."""
    if not kafka_answers():
        run_script("kafka.sh", "start")
    return KAFKA_BOOTSTRAP


def ensure_postgres() -> str:
    """Start the project's PostgreSQL cluster if needed; return the admin URL."""
    if not postgres_answers():
        run_script("postgres.sh", "start")
    return PG_ADMIN_URL


def stop_kafka() -> None:
    """Stop the local broker (by pid)."""
    run_script("kafka.sh", "stop")


def stop_postgres() -> None:
    """Stop the project's PostgreSQL cluster."""
    run_script("postgres.sh", "stop")
