"""Roots whose path needs URL escaping: every output lands exactly under the given root, and is found there again.

A working directory or a root named ``my data %20 #1 é`` used to send the outputs to a sibling
folder named with ``%20`` (and the metrics to one with ``%2520``): the run succeeded, and then
status, champion and predict found nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpipe.storage import parse_uri
from tests.cli import pipeline
from tests.conftest import SAMPLE

ODD = "my data %20 #1 é"


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _path(uri: str) -> Path:
    scheme, location = parse_uri(uri)
    assert scheme == "file"
    return Path(location)


@pytest.mark.parametrize("roots", ["default", "plain", "file-uri"])
def test_outputs_land_under_odd_roots_and_are_found_again(tmp_path: Path, roots: str) -> None:
    # Given a working directory whose name needs escaping in a URI, and roots inside it
    work = tmp_path / ODD
    work.mkdir()
    artifacts, published = work / ".pipeline" / "artifacts", work / ".pipeline" / "published"
    flags: list[str] = []
    if roots == "plain":
        artifacts, published = work / "a %41 #b ?c" / "artifacts", work / "ü%2520" / "published"
        flags = ["--artifact-root", str(artifacts), "--publish-uri", str(published)]
    elif roots == "file-uri":
        artifacts, published = work / "x y%" / "artifacts", work / "#z" / "published"
        flags = ["--artifact-root", artifacts.as_uri(), "--publish-uri", published.as_uri()]
    # When the pipeline runs there
    result = pipeline("run", "--json", "--run-date", "2026-11-25", *flags, cwd=work)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "SUCCEEDED"
    # Then every output is exactly under the given roots, and nothing was written anywhere else
    targets = {name: _path(task["target"]) for name, task in summary["tasks"].items()}
    for task, root in (("download", artifacts), ("train", artifacts), ("upload", published)):
        assert targets[task].is_relative_to(root)
        assert targets[task].is_file()
    for model in (targets["train"], targets["upload"]):
        assert model.with_name("metrics.json").is_file()
    assert (published / "iris" / "champion.json").is_file()
    everything = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert everything == {artifacts / f for f in _files(artifacts)} | {published / f for f in _files(published)}
    # And status, champion and predict find them there
    status = pipeline("status", "--json", *flags, cwd=work)
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)["runs"]
    assert [run["run_date"] for run in runs] == ["2026-11-25"]
    found = {kind: [(e["uri"], e["state"]) for e in runs[0][kind]] for kind in ("datasets", "models", "published")}
    assert found == {
        "datasets": [(summary["tasks"]["download"]["target"], "present")],
        "models": [(summary["tasks"]["train"]["target"], "present")],
        "published": [(summary["tasks"]["upload"]["target"], "present")],
    }
    publish_flags = flags[2:]
    champion = pipeline("champion", "--json", *publish_flags, cwd=work)
    assert champion.returncode == 0, champion.stderr
    assert json.loads(champion.stdout)["champion"]["model_uri"] == summary["tasks"]["upload"]["target"]
    predicted = pipeline("predict", "--json", "--input", str(SAMPLE), *publish_flags, cwd=work)
    assert predicted.returncode == 0, predicted.stderr
    assert len(json.loads(predicted.stdout)["predictions"]) == 150
    report = work / "report #1 %20.html"
    written = pipeline("report", "--html", str(report), *flags, cwd=work)
    assert written.returncode == 0, written.stderr
    assert "1 models over 1 run dates, 1 champion changes" in written.stdout
    page = report.read_text(encoding="utf-8")
    assert 'data-kind="champion"' in page
    assert 'id="skipped"' not in page
    report.unlink()
    # And a second run finds everything present, in the same place
    again = pipeline("run", "--json", "--run-date", "2026-11-25", *flags, cwd=work)
    assert {t["state"] for t in json.loads(again.stdout)["tasks"].values()} == {"present"}
    assert {p for p in tmp_path.rglob("*") if p.is_file()} == everything
