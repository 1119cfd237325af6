"""Settings from the environment (prefix ``WASTETRAIL_``), one model shared by all services."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from wastetrail_contracts.topics import kafka_client_options

LOCAL_DIR = Path(".local")
DEFAULT_PORTS = {"collection": 8001, "transfer": 8002, "treatment": 8003, "billing": 8004}


class ServiceSettings(BaseSettings):
    """What every service needs; a service subclasses it for its own knobs."""

    model_config = SettingsConfigDict(env_prefix="WASTETRAIL_", extra="ignore")

    service: str = ""
    database_url: str = ""
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # SASL/SCRAM principal of this service (deploy/local/kafka.sh makes one per service).
    kafka_username: str = ""
    kafka_password: str = ""
    kafka_sasl_mechanism: str = "SCRAM-SHA-256"
    topic_prefix: str = ""
    # Topic layout: 0 partitions keeps each catalog topic's own count; one broker locally
    # (replication 1), three in a cluster (replication 3, min.insync.replicas 2).
    topic_partitions: int = Field(default=0, ge=0)
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int = Field(default=1, ge=1)
    http_host: str = "127.0.0.1"
    http_port: int = 0
    local_dir: Path = LOCAL_DIR
    jwt_secret: str = ""
    keys_dir: Path = Field(default=LOCAL_DIR / "keys")
    # A service whose key is missing after it signed refuses to start unless told to make
    # a new one (wastetrail_runtime.signing).
    rotate_key: bool = False
    # Where the public key is published (default: beside the private key in keys_dir).
    public_keys_dir: Path | None = None
    checkpoint_every_events: int = Field(default=1000, ge=1)
    checkpoint_every_seconds: float = Field(default=10.0, gt=0)
    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_seconds: float = Field(default=0.05, gt=0)
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_seconds: float = Field(default=0.05, ge=0)
    # While the database or the broker is away a consumer waits, retrying at most this far
    # apart (transient failures are never dead-lettered).
    consumer_max_backoff_seconds: float = Field(default=5.0, gt=0)
    run_consumers: bool = True
    lag_poll_seconds: float = Field(default=15.0, gt=0)
    run_relay: bool = True
    log_level: str = "INFO"
    # Request bodies above this are refused (413) before they are parsed or authenticated;
    # an offline batch of 1,000 scans is about 350 kB.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    def kafka_options(self) -> dict[str, str]:
        """The Kafka client options of this service's principal (none on a PLAINTEXT broker)."""
        return kafka_client_options({"WASTETRAIL_KAFKA_USERNAME": self.kafka_username,
                                     "WASTETRAIL_KAFKA_PASSWORD": self.kafka_password,
                                     "WASTETRAIL_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism})

    def resolved_database_url(self) -> str:
        """The database URL; SQLite under .local/ when none is configured (one machine)."""
        if self.database_url:
            return self.database_url
        self.local_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{self.local_dir / (self.service or 'service')}.db"

    def resolved_http_port(self) -> int:
        """The HTTP port: configured, or the service's default."""
        return self.http_port or DEFAULT_PORTS.get(self.service, 8000)

    def resolved_jwt_secret(self) -> str:
        """The token-signing secret: configured, or one generated once under .local/."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.local_dir / "jwt.secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()
