"""Each function's role is enough and no more, shown by running its real handler under moto's IAM enforcement.

Each role's inline policies are taken from the SAM-transformed template, their intrinsics resolved to this test's
buckets (the artifacts prefix ``artifacts/``, the publish prefix the template's default), and given to an IAM user
of moto's; the handler runs with that user's access key while ``moto.core.enable_iam_authentication()`` is on, so
moto checks the signature and authorises every S3 request against those policies.

What moto 5.2.5 evaluates (moto/iam/access_control.py, moto/iam/policy_conditions.py, moto/core/authorization.py,
moto/core/responses.py, moto/s3/responses.py):

- The identity's own policies only: an IAM user's inline and attached policies and its groups' (or an assumed
  role's inline and attached ones). Not bucket or other resource-based policies, permission boundaries, SCPs or
  session policies.
- In each statement ``Effect`` (an explicit Deny wins), ``Action``/``NotAction`` and ``Resource``, with ``*``
  wildcards. ``NotResource`` is not understood: a statement without ``Resource`` matches every resource.
- S3 requests are authorised with the action moto derives from the method and query string (``HEAD``/``GET`` on a
  key: ``s3:GetObject``; ``PUT`` and the multipart ``POST`` requests: ``s3:PutObject``; ``GET`` on a bucket, so
  ListObjectsV2: ``s3:ListBucket``) on ``arn:aws:s3:::bucket`` or ``arn:aws:s3:::bucket/key``. Requests to other
  services that go through ``BaseResponse.call_action`` are authorised too, but against the resource ``*`` unless
  the service names one (SQS: the queue's ARN; IAM: a role's; STS AssumeRole: the role's, with its trust policy).
  A statement granting a specific ARN does not match ``*``, so moto denies such requests even when the policy is
  right: of the other roles only the schedule's ``sqs:SendMessage`` can be checked this way, not the state
  machine's ``lambda:InvokeFunction`` or the schedule's ``states:StartExecution``.
- ``Condition`` blocks never restrict an identity policy: only the ``StringEquals`` operator is implemented (every
  other one, ``StringLike``, ``Bool``, ``ArnLike``..., counts as satisfied), and the only request value moto
  supplies is ``sts:ExternalId`` on AssumeRole (a key without a value counts as satisfied). So the roles'
  ``s3:prefix`` conditions on ``s3:ListBucket`` are not checked here: moto allows a listing outside ``artifacts/``
  or the publish prefix that AWS refuses. ``tests/unit/test_iam.py`` checks that every ListBucket carries the
  condition; this test shows the rest.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from mlpipe.exceptions import SourceNotReadyError, StorageError
from mlpipe.steps import TASKS
from mlpipe.storage import Store
from tests.cfn import deployed, template
from tests.conftest import ARTIFACTS, MODELS, REPO, stores_empty

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
AsRole = Callable[[str], contextlib.AbstractContextManager[None]]
DATE = "2026-11-25"
PUBLISH_PREFIX = str(template()["Parameters"]["PublishPrefix"]["Default"])
EVENTS = REPO / "events"
# The targets of the sample run (events/download.json), whose folders hold their identities.
_RUN = json.loads((EVENTS / "download.json").read_text())
DATASET_KEY = _RUN["dataset_uri"].split("/", 3)[3]
MODEL_KEY = _RUN["model_uri"].split("/", 3)[3]
METRICS_KEY = MODEL_KEY.rsplit("/", 1)[0] + "/metrics.json"
PUBLISHED_KEY = _RUN["published_uri"].split("/", 3)[3]
LINEAGE_KEY = DATASET_KEY.rsplit("/", 1)[0] + "/lineage.json"
PROFILE_KEY = DATASET_KEY.rsplit("/", 1)[0] + "/profile.json"
ACCOUNT = "123456789012"  # moto's default account
# What the template's intrinsics stand for in this test: the stack's buckets are the test's, PublishBucket is empty.
VALUES = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": ACCOUNT,
    "ArtifactsBucket": ARTIFACTS,
    "ArtifactsBucket.Arn": f"arn:aws:s3:::{ARTIFACTS}",
    "ModelsBucket": MODELS,
    "ModelsBucket.Arn": f"arn:aws:s3:::{MODELS}",
    "PublishBucket": "",
    "PublishPrefix": PUBLISH_PREFIX,
    "PipelineStateMachine": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:mlpipe-test",
    "ScheduleDeadLetterQueue.Arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:mlpipe-test-dead-letters",
} | {
    f"{name}LogGroup.Arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/mlpipe/test/{name.lower()}:*"
    for name in ("Plan", "Download", "Train", "Upload", "Promote", "Report")
}
# A deployment with a source location (SourceLocations), so the roles' source grants are exercised too.
SOURCES = "mlpipe-test-sources"
VALUES |= {
    "SourceLocations": f"{SOURCES}/exports/",
    "SourceKmsKeyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/source",
}
CONDITIONS = {"PublishToOwnBucket": True}


def resolve(node: Any) -> Any:
    """``node`` with Ref, Fn::GetAtt, Fn::Sub and Fn::If replaced by this test's values; anything else fails."""
    if isinstance(node, list):
        return [resolve(item) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and next(iter(node)).startswith(("Ref", "Fn::")):
        (function, argument), *_ = node.items()
        return INTRINSICS[function](argument)
    return {key: resolve(value) for key, value in node.items()}


def _sub(argument: str | list[Any]) -> str:
    text, variables = (argument, {}) if isinstance(argument, str) else argument
    for key, value in (VALUES | {key: resolve(value) for key, value in variables.items()}).items():
        text = text.replace("${" + key + "}", str(value))
    assert "${" not in text, text
    return text


INTRINSICS: dict[str, Callable[[Any], Any]] = {
    "Ref": lambda name: VALUES[name],
    "Fn::GetAtt": lambda argument: VALUES[".".join(argument)],
    "Fn::If": lambda argument: resolve(argument[1] if CONDITIONS[argument[0]] else argument[2]),
    "Fn::Sub": _sub,
    "Fn::Split": lambda argument: resolve(argument[1]).split(argument[0]),
    "Fn::Join": lambda argument: argument[0].join(resolve(argument[1])),
    "Fn::Select": lambda argument: resolve(argument[1])[int(argument[0])],
}


def role_policies(role: str) -> dict[str, str]:
    """``{policy name: document as JSON}``: the role's inline policies in a TrainOn=lambda deployment, resolved."""
    properties = deployed("lambda", sources=True)["Resources"][role]["Properties"]
    assert not properties.get("ManagedPolicyArns")
    return {policy["PolicyName"]: json.dumps(resolve(policy["PolicyDocument"])) for policy in properties["Policies"]}


@pytest.fixture
def as_role(aws: Any, monkeypatch: pytest.MonkeyPatch) -> AsRole:
    """``with as_role("UploadRole"):`` S3 requests carry the key of a user with exactly that role's policies, and
    moto authorises each of them. Outside the block the ``aws`` fixture's client (no IAM identity) works as usual."""
    from moto.core import enable_iam_authentication  # noqa: PLC0415 - moto internals, ~2 s to import: lazy

    iam = boto3.client("iam")

    @contextlib.contextmanager
    def switch(role: str) -> Iterator[None]:
        user = f"as-{role}"
        iam.create_user(UserName=user)
        for name, document in role_policies(role).items():
            iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=document)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        with monkeypatch.context() as patch, enable_iam_authentication():
            patch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
            patch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
            # Each handler is loaded (and makes its Store, whose clients are made on first use) inside the block,
            # but boto3's default session caches the credentials it resolved first.
            patch.setattr(boto3, "DEFAULT_SESSION", None)
            yield

    return switch


def run_event(http_server: Any, **overrides: Any) -> dict[str, Any]:
    """events/download.json (the run object every task receives) on this test's buckets and HTTP server."""
    text = (EVENTS / "download.json").read_text()
    text = text.replace("example-mlpipe-artifacts", ARTIFACTS).replace("example-mlpipe-models", MODELS)
    event: dict[str, Any] = json.loads(text)
    assert event["dataset_uri"] == f"s3://{ARTIFACTS}/{DATASET_KEY}"
    assert event["published_uri"] == f"s3://{MODELS}/{PUBLISHED_KEY}"
    return event | {"run_date": DATE, "source_url": http_server.url(), "max_source_bytes": 1_000_000} | overrides


def make_inputs(invoke: Invoke, http_server: Any, *tasks: str) -> None:
    """Run ``tasks`` without IAM enforcement, to make a later task's inputs."""
    for task in tasks:
        assert invoke(task, run_event(http_server))["state"] == "ran"


def inputs_of(task: str) -> tuple[str, ...]:
    """The tasks before ``task``: what makes its inputs."""
    return TASKS[: TASKS.index(task)]


def written(s3: Any) -> dict[str, list[str]]:
    """Every object version ever written to the two buckets, by bucket."""
    return stores_empty(s3)


# --- each role is enough ------------------------------------------------------------------------
def test_the_plan_role_checks_every_target(aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole) -> None:
    make_inputs(invoke, http_server, "download")
    event = json.loads((EVENTS / "plan.json").read_text()) | {
        "artifact_root": f"s3://{ARTIFACTS}/artifacts",
        "publish_uri": f"s3://{MODELS}/{PUBLISH_PREFIX}",
        "source_id": _RUN["source_url"],  # the user's name for the source: no HEAD of it (and no network here)
    }
    with as_role("PlanRole"):
        plan = invoke("plan", event)
    assert plan["start_at"] == "train"
    assert {name: task["state"] for name, task in plan["tasks"].items()} == {
        "download": "present",
        "train": "pending",
        "upload": "pending",
    }


def test_the_download_role_writes_the_dataset(aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole) -> None:
    with as_role("DownloadRole"):
        assert invoke("download", run_event(http_server))["state"] == "ran"
        assert invoke("download", run_event(http_server))["state"] == "present"
    assert written(aws) == {ARTIFACTS: sorted([DATASET_KEY, LINEAGE_KEY, PROFILE_KEY]), MODELS: []}


def test_the_train_role_reads_the_dataset_and_writes_the_model(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole
) -> None:
    make_inputs(invoke, http_server, *inputs_of("train"))
    with as_role("TrainRole"):
        assert invoke("train", run_event(http_server))["state"] == "ran"
        assert invoke("train", run_event(http_server))["state"] == "present"
    assert written(aws) == {
        ARTIFACTS: sorted([DATASET_KEY, LINEAGE_KEY, PROFILE_KEY, MODEL_KEY, METRICS_KEY]),
        MODELS: [],
    }


def test_the_upload_role_publishes_the_model(aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole) -> None:
    make_inputs(invoke, http_server, *inputs_of("upload"))
    with as_role("UploadRole"):
        assert invoke("upload", run_event(http_server))["state"] == "ran"
        assert invoke("upload", run_event(http_server))["state"] == "present"
    assert written(aws)[MODELS] == sorted([PUBLISHED_KEY, PUBLISHED_KEY.rsplit("/", 1)[0] + "/metrics.json"])


def test_the_promote_role_moves_the_champion(aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole) -> None:
    make_inputs(invoke, http_server, *TASKS)
    with as_role("PromoteRole"):
        result = invoke("promote", run_event(http_server))
    assert result["promoted"] is True
    keys = written(aws)[MODELS]
    assert f"{PUBLISH_PREFIX}/iris/champion.json" in keys
    assert any(k.startswith(f"{PUBLISH_PREFIX}/iris/champion-history/") for k in keys)


def test_the_promote_role_cannot_write_models_or_artifacts(aws: Any, as_role: AsRole) -> None:
    with as_role("PromoteRole"):
        for uri in (f"s3://{MODELS}/{PUBLISH_PREFIX}/{DATE}/x/model.pkl", f"s3://{ARTIFACTS}/artifacts/{DATE}/x.csv"):
            with pytest.raises(StorageError, match="access denied"):
                Store.on_this_machine().target(uri).write_bytes(b"not allowed")
    assert written(aws) == {ARTIFACTS: [], MODELS: []}


def test_the_report_role_needs_no_storage(aws: Any, invoke: Invoke, as_role: AsRole) -> None:
    with as_role("ReportRole"):
        result = invoke("report", json.loads((EVENTS / "report.json").read_text()))
    assert result["summary"]["status"] == "SUCCEEDED"


# --- and no more --------------------------------------------------------------------------------
def denied(call: Callable[[], Any]) -> str:
    """The StorageError message of ``call``, which must be an access denial."""
    with pytest.raises(StorageError, match="access denied") as raised:
        call()
    return str(raised.value)


def test_the_download_role_cannot_write_the_publish_prefix_or_outside_artifacts(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole
) -> None:
    publish_prefix = f"s3://{MODELS}/{PUBLISH_PREFIX}/{DATE}/dataset.csv"
    elsewhere = f"s3://{ARTIFACTS}/other/{DATE}/dataset.csv"
    with as_role("DownloadRole"):
        # The publish prefix: the role may list it (the data contract's check reads the champion's files there),
        # so the target check answers "missing", and the write itself is refused.
        assert denied(lambda: invoke("download", run_event(http_server, dataset_uri=publish_prefix))).startswith(
            "cannot write"
        )
        # Its own bucket outside artifacts/: moto lets the listing through (s3:prefix is not evaluated), the write
        # itself is refused.
        assert denied(lambda: invoke("download", run_event(http_server, dataset_uri=elsewhere))).startswith(
            "cannot write"
        )
    assert written(aws) == {ARTIFACTS: [], MODELS: []}


def test_the_download_role_reads_the_source_location_and_nothing_else(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole
) -> None:
    # Given the day's file in the source location, and files beside it that are not
    aws.create_bucket(Bucket=SOURCES)
    aws.create_bucket(Bucket=f"{SOURCES}-other")
    sample = (REPO / "local" / "pipeline_local" / "data" / "iris.data").read_bytes()
    for bucket, key in ((SOURCES, f"exports/{DATE}.csv"), (SOURCES, f"private/{DATE}.csv")):
        aws.put_object(Bucket=bucket, Key=key, Body=sample)
    aws.put_object(Bucket=f"{SOURCES}-other", Key=f"exports/{DATE}.csv", Body=sample)

    def dataset(name: str) -> str:
        return f"s3://{ARTIFACTS}/artifacts/{DATE}/dataset-{name}/dataset.csv"

    with as_role("DownloadRole"):
        # When the download reads the source location: it may
        ran = invoke("download", run_event(http_server, source_url=f"s3://{SOURCES}/exports/{DATE}.csv"))
        assert ran["state"] == "ran"
        # And outside it, in the same bucket or another, it may not
        for source in (f"s3://{SOURCES}/private/{DATE}.csv", f"s3://{SOURCES}-other/exports/{DATE}.csv"):
            name = source.split("/")[2] + "-" + source.split("/")[3]
            event = run_event(http_server, source_url=source, dataset_uri=dataset(name))
            assert "cannot read" in denied(lambda event=event: invoke("download", event))
    etag = aws.head_object(Bucket=SOURCES, Key=f"exports/{DATE}.csv")["ETag"]
    event = json.loads((EVENTS / "plan.json").read_text()) | {
        "artifact_root": f"s3://{ARTIFACTS}/artifacts",
        "publish_uri": f"s3://{MODELS}/{PUBLISH_PREFIX}",
    }
    with as_role("PlanRole"):  # the plan's HEAD: the source location only (outside, S3 says 403: "not there")
        planned = invoke("plan", event | {"source_url": f"s3://{SOURCES}/exports/{{run_date}}.csv"})
        assert planned["run"]["source_version"]["etag"] == etag
        with pytest.raises(SourceNotReadyError):
            invoke("plan", event | {"source_url": f"s3://{SOURCES}/private/{{run_date}}.csv"})
    assert written(aws)[ARTIFACTS] == sorted([DATASET_KEY, LINEAGE_KEY, PROFILE_KEY])


def test_the_upload_role_cannot_write_artifacts(aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole) -> None:
    make_inputs(invoke, http_server, *inputs_of("upload"))
    before = written(aws)
    published = f"s3://{ARTIFACTS}/artifacts/{DATE}/published/model.pkl"
    with as_role("UploadRole"):
        # Upload reads artifacts/ (its input), so the target check passes and the write is what is refused.
        message = denied(lambda: invoke("upload", run_event(http_server, published_uri=published)))
    assert message.startswith("cannot write")
    assert written(aws) == before


@pytest.mark.parametrize("task", TASKS)
def test_the_plan_role_cannot_write_anything(
    aws: Any, http_server: Any, invoke: Invoke, as_role: AsRole, task: str
) -> None:
    # Given the task's inputs, when its handler runs with the plan's role, its checks pass and its write is refused
    make_inputs(invoke, http_server, *inputs_of(task))
    before = written(aws)
    with as_role("PlanRole"):
        message = denied(lambda: invoke(task, run_event(http_server)))
    assert message.startswith("cannot write")
    assert written(aws) == before


def test_the_schedule_role_sends_dead_letters_to_its_queue_only(aws: Any, as_role: AsRole) -> None:
    sqs = boto3.client("sqs")
    own = sqs.create_queue(QueueName="mlpipe-test-dead-letters")["QueueUrl"]
    other = sqs.create_queue(QueueName="mlpipe-test-other")["QueueUrl"]
    with as_role("ScheduleRole"):
        sender = boto3.client("sqs")
        sender.send_message(QueueUrl=own, MessageBody='{"trigger": "schedule"}')
        with pytest.raises(sender.exceptions.ClientError, match="AccessDenied"):
            sender.send_message(QueueUrl=other, MessageBody='{"trigger": "schedule"}')
    assert sqs.get_queue_attributes(QueueUrl=own, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"] == {
        "ApproximateNumberOfMessages": "1"
    }
