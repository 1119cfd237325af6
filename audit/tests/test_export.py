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
def export_dir(bulk_log: ProducedLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "evidence"
    code, stdout, _ = run("export", "--out", str(out), "--bootstrap", bulk_log.bootstrap,
                          "--topic-prefix", bulk_log.prefix, "--quiet")
    assert code == 0
    manifest_sha = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert f"manifest SHA-256 {manifest_sha}" in stdout
    return out


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
    bulk_log: ProducedLog, export_dir: Path, tmp_path: Path
) -> None:
    code, out, _ = run("replay", "--source", str(export_dir), "--keys-dir",
                       str(bulk_log.keys_dir), "--work-dir", str(tmp_path / "r"), "--json",
                       "--quiet")
    assert code == 0
    summary = json.loads(out)
    assert summary["ok"] is True
    assert summary["events"] == len(bulk_log.log.envelopes)
    assert summary["source"] == f"export {export_dir}"
    assert len(summary["manifest_sha256"]) == 64

    code, out, _ = run("trace", "L1", "--json", "--source", str(export_dir), "--keys-dir",
                       str(bulk_log.keys_dir), "--work-dir", str(tmp_path / "t"), "--quiet")
    assert code == 0
    assert json.loads(out)["treatment_split"]["composting"] == 10_800


def test_an_altered_export_is_refused(
    bulk_log: ProducedLog, export_dir: Path, tmp_path: Path
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

    code, _, err = run("replay", "--source", str(copy), "--keys-dir", str(bulk_log.keys_dir),
                       "--work-dir", str(tmp_path / "w"), "--quiet")
    assert code == 2
    assert f"{entry['path']}: SHA-256" in err and "does not match the manifest" in err

    # A forger who also rewrites the manifest is still caught by the hash chain.
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, out, _ = run("replay", "--source", str(copy), "--keys-dir", str(bulk_log.keys_dir),
                       "--work-dir", str(tmp_path / "w2"), "--json", "--quiet")
    assert code == 1
    assert [(f["topic"], f["partition"], f["offset"], f["kind"])
            for f in json.loads(out)["failures"]] == [
        (entry["topic"], entry["partition"], entry["start_offset"] + index, "modified")]
