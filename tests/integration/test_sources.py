"""Sources other than HTTP, through the real ASL on moto: an S3 object (versioned identity), gzip, a local file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from mlpipe.steps import TASKS
from pipeline_local.runner import LocalPipeline
from tests.conftest import ARTIFACTS, MODELS, SAMPLE, s3_versions
from tests.integration.conftest import DATE, states

SOURCES = "mlpipe-test-sources"
KEY = f"exports/{DATE}.csv"


def _input(source_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "run_date": DATE,
        "source_url": source_url,
        "artifact_root": f"s3://{ARTIFACTS}/runs",
        "publish_uri": f"s3://{MODELS}/iris",
    } | overrides


def _key(uri: str) -> str:
    return uri.split("/", 3)[3]


def _lineage(aws: Any, dataset_uri: str) -> dict[str, Any]:
    key = _key(dataset_uri).rsplit("/", 1)[0] + "/lineage.json"
    return dict(json.loads(aws.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read()))


def test_s3_source_identity_follows_the_objects_version(aws: Any, pipeline: LocalPipeline) -> None:
    # Given the day's export in S3, under a key with the date in it
    aws.create_bucket(Bucket=SOURCES)
    first_bytes = SAMPLE.read_bytes()
    etag = aws.put_object(Bucket=SOURCES, Key=KEY, Body=first_bytes)["ETag"]
    source = f"s3://{SOURCES}/exports/{{yyyy}}-{{mm}}-{{dd}}.csv"
    # When it runs: read, trained, published; the lineage names the version read
    first = pipeline.run(_input(source))
    assert first["status"] == "SUCCEEDED", first
    assert states(first) == dict.fromkeys(TASKS, "ran")
    lineage = _lineage(aws, first["tasks"]["download"]["target"])
    assert lineage["input_targets"][0]["uri"] == f"s3://{SOURCES}/{KEY}"
    assert lineage["input_targets"][0]["version"] == {"etag": etag, "version_id": None}
    assert lineage["inputs"]["source_version"] == {"etag": etag, "version_id": None}
    dataset_key = _key(first["tasks"]["download"]["target"])
    assert aws.get_object(Bucket=ARTIFACTS, Key=dataset_key)["Body"].read() == first_bytes
    # And run again unchanged: everything is present
    again = pipeline.run(_input(source))
    assert states(again) == dict.fromkeys(TASKS, "present")
    # When the same key is overwritten with other rows (the day's file sent again, corrected)
    rows = first_bytes.splitlines(keepends=True)
    aws.put_object(Bucket=SOURCES, Key=KEY, Body=b"".join(rows[:-10]))
    second = pipeline.run(_input(source))
    # Then a new dataset identity: download, train and upload ran, the first run's outputs are untouched
    assert states(second) == dict.fromkeys(TASKS, "ran")
    assert second["tasks"]["download"]["target"] != first["tasks"]["download"]["target"]
    for task in TASKS:
        uri = first["tasks"][task]["target"]
        bucket = ARTIFACTS if uri.startswith(f"s3://{ARTIFACTS}/") else MODELS
        assert s3_versions(aws, bucket, _key(uri)) == 1, uri
    assert aws.get_object(Bucket=ARTIFACTS, Key=dataset_key)["Body"].read() == first_bytes


def test_gzip_source_is_decompressed_while_it_streams(aws: Any, pipeline: LocalPipeline) -> None:
    aws.create_bucket(Bucket=SOURCES)
    aws.put_object(Bucket=SOURCES, Key=f"{KEY}.gz", Body=gzip.compress(SAMPLE.read_bytes()))
    summary = pipeline.run(_input(f"s3://{SOURCES}/exports/{{run_date}}.csv.gz"))
    assert summary["status"] == "SUCCEEDED", summary
    dataset = aws.get_object(Bucket=ARTIFACTS, Key=_key(summary["tasks"]["download"]["target"]))["Body"].read()
    assert dataset == SAMPLE.read_bytes()


def test_local_file_is_read_in_place(aws: Any, pipeline: LocalPipeline, tmp_path: Path) -> None:
    data = tmp_path / "my data" / "iris.csv"
    data.parent.mkdir()
    data.write_bytes(SAMPLE.read_bytes())
    first = pipeline.run(_input(str(data)))
    assert states(first) == dict.fromkeys(TASKS, "ran")
    lineage = _lineage(aws, first["tasks"]["download"]["target"])
    assert lineage["inputs"]["source_version"]["size"] == len(SAMPLE.read_bytes())
    # The unchanged file again: present; read in place, never moved or changed
    assert states(pipeline.run(_input(str(data)))) == dict.fromkeys(TASKS, "present")
    assert data.read_bytes() == SAMPLE.read_bytes()
    # Its file:// URI reads the same bytes
    by_uri = pipeline.run(_input(data.as_uri(), run_date="2026-11-26"))
    assert states(by_uri) == dict.fromkeys(TASKS, "ran")
    dataset = aws.get_object(Bucket=ARTIFACTS, Key=_key(by_uri["tasks"]["download"]["target"]))["Body"].read()
    assert dataset == SAMPLE.read_bytes()


def _entered(pipeline: LocalPipeline, state: str) -> int:
    arn = pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"][0]["executionArn"]
    return sum(
        1 for event in pipeline.history(arn) if (event.get("stateEnteredEventDetails") or {}).get("name") == state
    )


def test_missing_object_fails_at_once_by_default_with_nothing_written(aws: Any, pipeline: LocalPipeline) -> None:
    aws.create_bucket(Bucket=SOURCES)
    summary = pipeline.run(_input(f"s3://{SOURCES}/{KEY}"))
    assert summary["status"] == "FAILED"
    assert summary["error"]["task"] == "plan"
    assert summary["error"]["type"] == "SourceNotReadyError"
    assert f"s3://{SOURCES}/{KEY} is not there" in summary["error"]["message"]
    assert "SourceWaitSeconds" in summary["error"]["message"]
    assert s3_keys_all(aws) == []


def test_late_object_is_waited_for_and_then_read(aws: Any) -> None:
    # Given a deployment that waits up to 150 s for its source (Wait states scaled to 0 here)
    pipeline = LocalPipeline(env={"SOURCE_WAIT_SECONDS": "150"}, retry_delay_scale=0.0)
    aws.create_bucket(Bucket=SOURCES)
    plan = pipeline.lambdas.handlers["plan"]
    looks: list[int] = []

    def plan_and_upload_after_two_looks(event: Any, context: Any) -> Any:
        looks.append(1)
        if len(looks) == 3:  # the file lands while the execution waits
            aws.put_object(Bucket=SOURCES, Key=KEY, Body=SAMPLE.read_bytes())
        return plan(event, context)

    pipeline.lambdas.handlers["plan"] = plan_and_upload_after_two_looks
    summary = pipeline.run(_input(f"s3://{SOURCES}/{KEY}"))
    assert summary["status"] == "SUCCEEDED", summary
    assert states(summary) == dict.fromkeys(TASKS, "ran")
    assert _entered(pipeline, "Wait for the source") == 2
    # And when it never lands: the wait is used up (60 + 60 + 30 s), then the run fails with that name
    pipeline.lambdas.handlers["plan"] = plan
    late = pipeline.run(_input(f"s3://{SOURCES}/other.csv"))
    assert late["error"]["type"] == "SourceNotReadyError"
    assert "waited 150 s" in late["error"]["message"]


def test_object_replaced_during_the_download_is_planned_again(aws: Any, pipeline: LocalPipeline) -> None:
    # Given an unversioned source bucket whose object is replaced after the plan read its ETag
    aws.create_bucket(Bucket=SOURCES)
    aws.put_object(Bucket=SOURCES, Key=KEY, Body=SAMPLE.read_bytes())
    rows = SAMPLE.read_bytes().splitlines(keepends=True)
    replaced = b"".join(rows[:-5])
    plan = pipeline.lambdas.handlers["plan"]
    plans: list[dict[str, Any]] = []

    def plan_then_replace(event: Any, context: Any) -> Any:
        planned = plan(event, context)
        plans.append(planned)
        if len(plans) == 1:
            aws.put_object(Bucket=SOURCES, Key=KEY, Body=replaced)
        return planned

    pipeline.lambdas.handlers["plan"] = plan_then_replace
    summary = pipeline.run(_input(f"s3://{SOURCES}/{KEY}"))
    # Then the download refused the new bytes under the old version's identity, the plan named the new one
    assert summary["status"] == "SUCCEEDED", summary
    assert [name for name, _ in pipeline.lambdas.invocations].count("download") == 2
    assert _entered(pipeline, "Source changed: plan again") == 1
    first_dataset, dataset = plans[0]["run"]["dataset_uri"], summary["tasks"]["download"]["target"]
    assert dataset != first_dataset
    assert _key(first_dataset) not in s3_keys_all(aws)
    assert aws.get_object(Bucket=ARTIFACTS, Key=_key(dataset))["Body"].read() == replaced


def s3_keys_all(aws: Any) -> list[str]:
    """Every object version ever written to the artifacts and models buckets."""
    found = []
    for bucket in (ARTIFACTS, MODELS):
        listing = aws.list_object_versions(Bucket=bucket)
        found += [v["Key"] for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])]
    return sorted(found)
