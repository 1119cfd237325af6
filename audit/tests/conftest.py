"""Fixtures of the auditors' tool tests: small generated logs on the real broker.

Puts this directory on sys.path for the helper modules (_auditlog, _scenario).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _auditlog import LogBuilder, ProducedLog, make_keys, produce, write_public_keys
from _scenario import filler, hand_scenario


@pytest.fixture(scope="session")
def bulk_log(
    kafka_bootstrap: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> ProducedLog:
    """The hand-made scenario plus filler trips: a few hundred events over 13 chains."""
    keys = make_keys()
    log = LogBuilder(keys, checkpoint_every=8)
    filler(log)
    hand_scenario(log)
    prefix = f"{topic_prefix}bulk."
    produce(kafka_bootstrap, prefix, log.records)
    keys_dir = write_public_keys(keys, tmp_path_factory.mktemp("keys"))
    return ProducedLog(log, prefix, keys_dir, kafka_bootstrap)


@pytest.fixture(scope="session")
def hand_log(
    kafka_bootstrap: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> ProducedLog:
    """Only the hand-made scenario, whose numbers the tests compute by hand."""
    keys = make_keys()
    log = hand_scenario(LogBuilder(keys, checkpoint_every=8))
    prefix = f"{topic_prefix}hand."
    produce(kafka_bootstrap, prefix, log.records)
    keys_dir = write_public_keys(keys, tmp_path_factory.mktemp("keys"))
    return ProducedLog(log, prefix, keys_dir, kafka_bootstrap)
