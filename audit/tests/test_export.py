"""`wastetrail audit export`: the log as files with a manifest; every command runs on it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from _auditlog import ProducedLog
from typer.testing import CliRunner
from wastetrail_audit.cli import app

pytestmark = pytest.mark.integration


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def export_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exporting auditor's signing key (its .pub is written beside it on first use)."""
    return tmp_path_factory.mktemp("auditor") / "export.key"


@pytest.fixture(scope="module")
def export_dir(
    bulk_log: ProducedLog, export_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("export") / "evidence"
    code, stdout, _ = run("export", "--out", str(out), "--bootstrap", bulk_log.bootstrap,
                          "--topic-prefix", bulk_log.prefix, "--signing-key", str(export_key),
                          "--quiet")
    assert code == 0
    manifest_sha = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert f"manifest SHA-256 {manifest_sha}" in stdout
    assert (out / "manifest.sig").is_file()
    return out


@pytest.fixture(scope="module")
def trust(
    bulk_log: ProducedLog, export_dir: Path, export_key: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The reader's trust file: the services' keys and the exporting auditor's key."""
    path = tmp_path_factory.mktemp("trust") / "trust.json"
    assert run("trust", "pin", "--keys-dir", str(bulk_log.keys_dir), "--trust", str(path))[0] == 0
    code, out, _ = run("trust", "pin", "--key", str(export_key.with_suffix(".pub")),
                       "--owner", "audit", "--trust", str(path))
    assert code == 0 and out.startswith("pinned audit ")
    return str(path)


def test_export_writes_every_record_with_digests(bulk_log: ProducedLog, export_dir: Path) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["files"]
    assert len(files) == 16  # 4 event topics × 4 partitions
    assert sum(f["records"] for f in files) == len(bulk_log.log.envelopes)
    for entry in files:
        data = (export_dir / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        offsets = [json.loads(line)["offset"] for line in data.splitlines()]
        assert offsets == list(range(entry["start_offset"], entry["end_offset"]))
    # the records are the broker's bytes, unchanged
    entry = next(f for f in files if f["service"] == "collection" and f["records"])
    first = json.loads((export_dir / entry["path"]).read_text().splitlines()[0])
    sent = bulk_log.log.records[("collection", entry["partition"])][0]
    assert first["value"]["text"].encode() == sent[1]


def test_replay_and_trace_on_the_export(
    bulk_log: ProducedLog, export_dir: Path, trust: str, tmp_path: Path
) -> None:
    code, out, _ = run("replay", "--source", str(export_dir), "--trust", trust,
                       "--work-dir", str(tmp_path / "r"), "--json", "--quiet")
    assert code == 0
    summary = json.loads(out)
    assert summary["ok"] is True
    assert summary["events"] == len(bulk_log.log.envelopes)
    assert summary["source"] == f"export {export_dir}"
    assert len(summary["manifest_sha256"]) == 64

    code, out, _ = run("trace", "L1", "--json", "--source", str(export_dir), "--trust", trust,
                       "--work-dir", str(tmp_path / "t"), "--quiet")
    assert code == 0
    assert json.loads(out)["treatment_split"]["composting"] == 10_800


def test_an_altered_export_is_refused(
    bulk_log: ProducedLog, export_dir: Path, trust: str, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in export_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    entry = max(manifest["files"], key=lambda f: f["records"])
    path = copy / entry["path"]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '\\"grams\\":' in line)
    lines[index] = lines[index].replace('\\"grams\\":', '\\"grams\\":1', 1)  # 1 kg → 11 kg
    path.write_text("".join(lines), encoding="utf-8")

    code, _, err = run("replay", "--source", str(copy), "--trust", trust,
                       "--work-dir", str(tmp_path / "w"), "--quiet")
    assert code == 2
    assert f"{entry['path']}: SHA-256" in err and "does not match the manifest" in err

    # A forger who also rewrites the manifest's digest is caught by its signature...
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, _, err = run("replay", "--source", str(copy), "--trust", trust,
                       "--work-dir", str(tmp_path / "w2"), "--quiet")
    assert code == 2
    assert f"{copy / 'manifest.json'}: the signature does not verify" in err

    # ... and one who re-signs it with a key of their own is not trusted.
    code, _, err = run("export", "--out", str(tmp_path / "other"), "--bootstrap",
                       bulk_log.bootstrap, "--topic-prefix", bulk_log.prefix,
                       "--signing-key", str(tmp_path / "forger.key"), "--quiet")
    assert code == 0
    (copy / "manifest.sig").write_bytes((tmp_path / "other" / "manifest.sig").read_bytes())
    code, _, err = run("replay", "--source", str(copy), "--trust", trust,
                       "--work-dir", str(tmp_path / "w3"), "--quiet")
    assert code == 2
    assert "which is not a trusted export key" in err

    # ... and so is one who simply drops the signature.
    (copy / "manifest.sig").unlink()
    code, _, err = run("replay", "--source", str(copy), "--trust", trust,
                       "--work-dir", str(tmp_path / "w4"), "--quiet")
    assert code == 2
    assert "carries no readable signature" in err


def test_an_export_missing_a_topic_fails_naming_it(
    bulk_log: ProducedLog, export_dir: Path, export_key: Path, trust: str, tmp_path: Path
) -> None:
    """An export re-signed by the auditor's own key but without billing's files (e.g. made
    from a broker whose billing topic was deleted) is not a verified log."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from wastetrail_audit.export import SIGNATURE
    from wastetrail_contracts.keys import key_id_for

    copy = tmp_path / "copy"
    copy.mkdir()
    manifest = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))
    billing = [f for f in manifest["files"] if f["service"] == "billing"]
    manifest["files"] = [f for f in manifest["files"] if f["service"] != "billing"]
    for entry in manifest["files"]:
        (copy / entry["path"]).write_bytes((export_dir / entry["path"]).read_bytes())
    data = json.dumps(manifest).encode()
    (copy / "manifest.json").write_bytes(data)
    key = load_pem_private_key(export_key.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    (copy / SIGNATURE).write_text(json.dumps(
        {"key_id": key_id_for(key.public_key()), "signature": key.sign(data).hex()}))
    code, out, _ = run("replay", "--source", str(copy), "--trust", trust,
                       "--work-dir", str(tmp_path / "w"), "--json", "--quiet")
    assert code == 1
    assert {(f["topic"], f["partition"], f["offset"], f["kind"])
            for f in json.loads(out)["failures"]} == {
        (billing[0]["topic"], p, 0, "missing_topic") for p in range(4)}
