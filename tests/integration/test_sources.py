"""Sources other than HTTP, through the real ASL on moto: an S3 object (versioned identity), gzip, a local file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from mlpipe.steps import TASKS
from pipeline_local.runner import LocalPipeline
from tests.cfn import template
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


# --- a run when the data lands (TriggerOnUpload) ------------------------------------------------
def _object_created(bucket: str, key: str, time: str = "2026-11-25T06:12:00Z") -> dict[str, Any]:
    """An S3 "Object Created" event as EventBridge delivers it (the S3 user guide's "EventBridge event message
    structure")."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": time,
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 4551, "etag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "1"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
        "ingestion-time": "2026-11-25T06:12:01Z",
    }


def _through_the_rule(event: dict[str, Any], source_url: str) -> dict[str, Any] | None:
    """The template's UploadTriggerRule applied to ``event`` by moto's events backend (its pattern matching and its
    input transformer): the execution input it starts the pipeline with, or None when the rule does not match.

    moto's rules cannot target a state machine (``Rule.send_to_targets`` raises NotImplementedError for
    ``states``), so the test starts the execution with what the transformer made."""
    from moto.events.models import EventPattern  # noqa: PLC0415 - moto internals, imported where used
    from moto.events.utils import EventTemplateParser  # noqa: PLC0415

    rule = template()["Resources"]["UploadTriggerRule"]["Properties"]
    pattern = json.loads(json.dumps(rule["EventPattern"]))
    select = pattern["detail"]["bucket"]["name"][0]["Select"]  # !Select [2, !Split ["/", !Ref SourceUrl]]
    assert select[1] == {"Split": ["/", {"Ref": "SourceUrl"}]}
    pattern["detail"]["bucket"]["name"] = [source_url.split("/")[int(select[0])]]
    if not EventPattern.load(json.dumps(pattern)).matches_event(event):
        return None
    (target,) = rule["Targets"]
    transformer = target["InputTransformer"]
    return dict(EventTemplateParser.parse(transformer["InputTemplate"], transformer["InputPathsMap"], event))


def test_an_upload_starts_a_run_for_its_date_once_and_other_objects_are_ignored(aws: Any) -> None:
    # Given a deployment whose source is the day's export in S3, started by uploads
    source_url = f"s3://{SOURCES}/exports/{{run_date}}.csv"
    pipeline = LocalPipeline(env={"SOURCE_URL": source_url}, retry_delay_scale=0.0)
    aws.create_bucket(Bucket=SOURCES)
    aws.put_object(Bucket=SOURCES, Key="exports/2026-11-24.csv", Body=SAMPLE.read_bytes())
    roots = {"artifact_root": f"s3://{ARTIFACTS}/runs", "publish_uri": f"s3://{MODELS}/iris"}
    upload = _through_the_rule(_object_created(SOURCES, "exports/2026-11-24.csv"), source_url)
    assert upload == {
        "trigger": "upload",
        "source_url": f"s3://{SOURCES}/exports/2026-11-24.csv",
        "uploaded_at": "2026-11-25T06:12:00Z",
    }
    # When it runs: the run date is the key's, not the upload's
    first = pipeline.run(upload | roots)
    assert first["status"] == "SUCCEEDED", first
    assert first["run_date"] == "2026-11-24"
    assert states(first) == dict.fromkeys(TASKS, "ran")
    # And the same object announced again (S3 may deliver an event twice): nothing is made again
    again = pipeline.run(_through_the_rule(_object_created(SOURCES, "exports/2026-11-24.csv"), source_url) | roots)
    assert states(again) == dict.fromkeys(TASKS, "present")
    # An object the SourceUrl does not name: the execution succeeds, ignored, with the reason; nothing written
    before = s3_keys_all(aws)
    other = _through_the_rule(_object_created(SOURCES, "exports/readme.txt"), source_url)
    assert other is not None
    ignored = pipeline.run(other | roots)
    assert ignored["status"] == "IGNORED"
    assert "exports/readme.txt does not match the SourceUrl" in ignored["reason"]
    assert s3_keys_all(aws) == before
    # An object in another bucket does not even start an execution
    assert _through_the_rule(_object_created("someone-elses-bucket", "exports/2026-11-24.csv"), source_url) is None
