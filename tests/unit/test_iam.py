"""Least privilege and hardening, read from the template as CloudFormation sees it (after the SAM transform)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cfn import deployed, transformed

# APIs without resource-level permissions: "*" is what they require.
STAR_ONLY_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",  # the SageMaker jobs' role, limited by a cloudwatch:namespace condition
}
TRAIN_ON = pytest.mark.parametrize("train_on", ["lambda", "sagemaker"])


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def resources(kind: str, train_on: str = "lambda") -> dict[str, dict[str, Any]]:
    return {name: r for name, r in deployed(train_on)["Resources"].items() if r["Type"] == kind}


def statements(role: str, train_on: str = "lambda", effect: str = "Allow") -> list[dict[str, Any]]:
    """The role's statements of ``effect``: its grants (Allow), or what it is explicitly refused (Deny)."""
    properties = deployed(train_on)["Resources"][role]["Properties"]
    assert not properties.get("ManagedPolicyArns"), f"{role} has managed policies (they grant on *)"
    found = []
    for policy in properties.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] in {"Allow", "Deny"}
            if statement["Effect"] != effect:
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            found.append(statement | {"Action": actions})
    return found


def grants(role: str, service: str, train_on: str = "lambda") -> dict[str, list[str]]:
    """``{action: [resource as JSON, ...]}`` for one service's actions in a role."""
    result: dict[str, list[str]] = {}
    for statement in statements(role, train_on):
        for action in statement["Action"]:
            if action.startswith(f"{service}:"):
                result.setdefault(action, []).append(json.dumps(statement["Resource"]))
    return result


@TRAIN_ON
def test_every_role_is_explicit_and_has_no_wildcard_action(train_on: str) -> None:
    roles = resources("AWS::IAM::Role", train_on)
    assert set(roles) >= {"PlanRole", "DownloadRole", "TrainRole", "UploadRole", "ReportRole", "StateMachineRole"}
    assert ("SageMakerTrainingRole" in roles) == (train_on == "sagemaker")
    for role in roles:
        for statement in statements(role, train_on):
            assert all("*" not in action for action in statement["Action"]), (role, statement)


@TRAIN_ON
def test_star_resources_only_where_the_api_requires_them(train_on: str) -> None:
    for role in resources("AWS::IAM::Role", train_on):
        for statement in statements(role, train_on):
            if statement["Resource"] == "*":
                assert set(statement["Action"]) <= STAR_ONLY_ACTIONS, (role, statement)
                if "cloudwatch:PutMetricData" in statement["Action"]:
                    assert statement["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_each_function_logs_only_to_its_own_log_group() -> None:
    for name in ("Plan", "Download", "Train", "Upload", "Report"):
        logs = grants(f"{name}Role", "logs")
        assert set(logs) == {"logs:CreateLogStream", "logs:PutLogEvents"}
        assert all(f"{name}LogGroup" in resource for resource in logs["logs:PutLogEvents"])


def test_download_and_train_write_only_under_artifacts() -> None:
    for role in ("DownloadRole", "TrainRole"):
        s3 = grants(role, "s3")
        assert set(s3) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
        for resource in s3["s3:PutObject"]:
            assert "/artifacts/*" in resource
            assert "ModelsBucket" not in resource
            assert "PublishBucket" not in resource
        outside = [r for r in s3["s3:GetObject"] if "/artifacts/*" not in r]
        # train reads the champion's manifest (the gate compares with it), and nothing else outside artifacts;
        # download reads it too, with the data contract and the champion's card (mlpipe.contract.contract_for)
        assert all(r.count("${PublishPrefix}/*/champion.json") == 1 for r in outside), outside
        if role == "DownloadRole":
            assert [entry["Fn::Sub"][0].rsplit("/", 2)[-2:] for entry in json.loads(outside[0])] == [
                ["*", "champion.json"],
                ["*", "contract.json"],
                ["*", "metrics.json"],
            ]


def test_upload_reads_artifacts_and_writes_only_the_publish_prefix() -> None:
    s3 = grants("UploadRole", "s3")
    assert s3["s3:PutObject"] == [r for r in s3["s3:PutObject"] if "${PublishPrefix}/*" in r]
    assert len(s3["s3:PutObject"]) == 1
    assert any("/artifacts/*" in r for r in s3["s3:GetObject"])


def test_plan_only_reads_and_report_touches_no_storage() -> None:
    assert set(grants("PlanRole", "s3")) == {"s3:ListBucket", "s3:GetObject"}
    assert grants("ReportRole", "s3") == {}


@TRAIN_ON
def test_bucket_listing_is_limited_to_the_run_prefixes(train_on: str) -> None:
    roles = ["PlanRole", "DownloadRole", "TrainRole", "UploadRole"]
    for role in roles + (["SageMakerTrainingRole"] if train_on == "sagemaker" else []):
        for statement in statements(role, train_on):
            if "s3:ListBucket" in statement["Action"]:
                assert "s3:prefix" in json.dumps(statement.get("Condition")), role


def test_state_machine_invokes_only_the_pipeline_functions() -> None:
    invoke = grants("StateMachineRole", "lambda")
    assert set(invoke) == {"lambda:InvokeFunction"}
    targets = json.loads(invoke["lambda:InvokeFunction"][0])
    assert sorted(t["Fn::GetAtt"][0] for t in targets) == [
        "DownloadFunction",
        "PlanFunction",
        "PromoteFunction",
        "ReportFunction",
        "TrainFunction",
        "UploadFunction",
    ]


def test_the_schedule_may_only_start_this_state_machine_and_store_a_dead_letter() -> None:
    target = resources("AWS::Scheduler::Schedule")["PipelineStateMachineDaily"]["Properties"]["Target"]
    assert target["RoleArn"] == {"Fn::GetAtt": ["ScheduleRole", "Arn"]}
    assert not [name for name in resources("AWS::IAM::Role") if name.startswith("PipelineStateMachine")]
    assert [action for statement in statements("ScheduleRole") for action in statement["Action"]] == [
        "states:StartExecution",
        "sqs:SendMessage",
    ]
    assert grants("ScheduleRole", "states") == {"states:StartExecution": ['{"Ref": "PipelineStateMachine"}']}
    assert grants("ScheduleRole", "sqs") == {"sqs:SendMessage": ['{"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}']}


def test_every_service_role_is_assumable_only_from_this_account() -> None:
    for role, service in (("StateMachineRole", "states"), ("ScheduleRole", "scheduler")):
        trust = transformed()["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {
                "Effect": "Allow",
                "Principal": {"Service": f"{service}.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
            }
        ], role


def test_a_schedule_that_cannot_start_a_run_leaves_an_encrypted_dead_letter_and_an_alarm() -> None:
    target = resources("AWS::Scheduler::Schedule")["PipelineStateMachineDaily"]["Properties"]["Target"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    queue = transformed()["Resources"]["ScheduleDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarms = resources("AWS::CloudWatch::Alarm")
    depth = alarms["ScheduleDeadLettersAlarm"]["Properties"]
    assert (depth["Namespace"], depth["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert depth["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "QueueName"]}}
    ]
    undeliverable = alarms["ScheduleUndeliverableAlarm"]["Properties"]
    assert undeliverable["MetricName"] == "InvocationsFailedToBeSentToDeadLetterCount"
    # Scheduler's metrics are per schedule group: the stack's own group keeps other stacks' schedules out.
    assert undeliverable["Dimensions"] == [{"Name": "ScheduleGroup", "Value": {"Ref": "ScheduleGroup"}}]
    assert resources("AWS::Scheduler::Schedule")["PipelineStateMachineDaily"]["Properties"]["GroupName"] == {
        "Ref": "ScheduleGroup"
    }
    for alarm in (depth, undeliverable):
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["TreatMissingData"] == "notBreaching"


# Properties ending in "Name" that name no resource of their own.
NOT_PHYSICAL_NAMES = {"DisplayName", "MetricName"}


def test_every_physical_name_includes_the_stack_name() -> None:
    # Given two stacks of this template in one account and region (mlpipe-dev and mlpipe-prod)
    # Then no resource gets a name the other would also get: every name set contains the stack name.
    template = transformed()
    named = []
    for logical_id, resource in template["Resources"].items():
        for key, value in resource.get("Properties", {}).items():
            if not key.endswith("Name") or key in NOT_PHYSICAL_NAMES:
                continue
            if isinstance(value, dict) and value.get("Ref") in template["Resources"]:
                continue  # a reference to another resource of the stack (GroupName), not a name of its own
            named.append(logical_id)
            assert "AWS::StackName" in json.dumps(value), (logical_id, key, value)
    assert len(named) >= 8  # six log groups and two layers at least: the walk found them


def test_buckets_are_encrypted_private_and_tls_only() -> None:
    buckets = resources("AWS::S3::Bucket")
    policies = {json.dumps(p["Properties"]["Bucket"]): p for p in resources("AWS::S3::BucketPolicy").values()}
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
        deny = policies[json.dumps({"Ref": name})]["Properties"]["PolicyDocument"]["Statement"][0]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_models_are_versioned_and_intermediates_expire() -> None:
    buckets = resources("AWS::S3::Bucket")
    assert buckets["ModelsBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = buckets["ArtifactsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if "ExpirationInDays" in r]
    assert [r["Prefix"] for r in expiring] == ["artifacts/", "sagemaker/output/"]  # not the staged code
    assert all(r["ExpirationInDays"] == {"Ref": "IntermediateRetentionDays"} for r in expiring)


def test_trainings_at_once_are_capped_by_default() -> None:
    train = transformed()["Resources"]["TrainFunction"]["Properties"]
    assert "ReserveTrainConcurrency" in json.dumps(train["ReservedConcurrentExecutions"])
    assert transformed()["Parameters"]["TrainReservedConcurrency"]["Default"] == 2


def test_functions_and_state_machine_are_traced_and_logged() -> None:
    for name, function in resources("AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        assert "LogGroup" in json.dumps(function["Properties"]["LoggingConfig"]), name
    machine = transformed()["Resources"]["PipelineStateMachine"]["Properties"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == {"Ref": "ExecutionLogLevel"}


def test_failed_runs_raise_an_alarm_with_an_optional_email() -> None:
    alarm = transformed()["Resources"]["FailedRunsAlarm"]["Properties"]
    metrics = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert metrics == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert transformed()["Resources"]["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def test_backfill_starts_only_the_pipeline_and_watches_only_its_executions() -> None:
    role = "BackfillStateMachineRole"
    states = grants(role, "states")
    assert set(states) == {"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}
    assert states["states:StartExecution"] == ['{"Ref": "PipelineStateMachine"}']
    for action in ("states:DescribeExecution", "states:StopExecution"):
        (resource,) = states[action]
        assert ":execution:${PipelineStateMachine.Name}:*" in resource, resource
    events = grants(role, "events")
    assert set(events) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    for resources_ in events.values():
        assert resources_ == [
            r for r in resources_ if r.endswith(':rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"}')
        ]
    invoke = grants(role, "lambda")
    assert set(invoke) == {"lambda:InvokeFunction"}
    targets = json.loads(invoke["lambda:InvokeFunction"][0])
    assert sorted(t["Fn::GetAtt"][0] for t in targets) == ["PlanFunction", "ReportFunction"]
    assert {action.split(":")[0] for statement in statements(role) for action in statement["Action"]} == {
        "states",
        "events",
        "lambda",
        "logs",
        "xray",
    }


def test_backfill_state_machine_is_traced_and_logs_to_its_own_group() -> None:
    machine = transformed()["Resources"]["BackfillStateMachine"]["Properties"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == {"Ref": "ExecutionLogLevel"}
    destination = machine["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert destination == {"Fn::GetAtt": ["BackfillStateMachineLogGroup", "Arn"]}
    assert machine["RoleArn"] == {"Fn::GetAtt": ["BackfillStateMachineRole", "Arn"]}


def test_promote_writes_only_the_champion_and_announces_only_promotions() -> None:
    s3 = grants("PromoteRole", "s3")
    assert set(s3) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}
    written = json.loads(s3["s3:PutObject"][0])
    assert [entry["Fn::Sub"][0].rsplit("/", 2)[-2:] for entry in written] == [
        ["*", "champion.json"],  # <prefix>/<model>/champion.json: each model's
        ["champion-history", "*"],
        ["*", "contract.json"],
    ]
    assert all("artifacts" not in r for r in s3["s3:GetObject"])
    (statement,) = [s for s in statements("PromoteRole") if "events:PutEvents" in s["Action"]]
    assert statement["Action"] == ["events:PutEvents"]
    assert "event-bus/default" in json.dumps(statement["Resource"])
    assert statement["Condition"] == {
        "StringEquals": {"events:source": "mlpipe", "events:detail-type": "Model promoted"}
    }


def test_train_reads_only_the_champions_manifest_outside_artifacts() -> None:
    listed = [s for s in statements("TrainRole") if "s3:ListBucket" in s["Action"]]
    prefixes = sorted(json.dumps(s["Condition"]["StringLike"]["s3:prefix"]) for s in listed)
    assert prefixes == ['"artifacts/*"', '{"Fn::Sub": "${PublishPrefix}/*/champion.json"}']


def test_nothing_of_sagemaker_is_deployed_with_train_on_lambda() -> None:
    text = json.dumps(deployed("lambda")["Resources"])
    assert "SageMakerTrainingRole" not in text.replace('"SageMakerRoleArn": "none"', "")
    assert "sagemaker:" not in text
    assert "iam:PassRole" not in text
    assert grants("PlanRole", "s3", "lambda").get("s3:PutObject") is None


def test_the_state_machine_runs_only_its_own_training_jobs_and_passes_only_their_role() -> None:
    sagemaker = grants("StateMachineRole", "sagemaker", "sagemaker")
    assert set(sagemaker) == {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
    }
    for (resource,) in sagemaker.values():
        # the job names' prefix is the plan's TRAINING_JOB_PREFIX, the stack's name
        assert resource.endswith(':training-job/${AWS::StackName}-*"}'), resource
    plan_env = deployed("sagemaker")["Resources"]["PlanFunction"]["Properties"]["Environment"]["Variables"]
    assert plan_env["TRAINING_JOB_PREFIX"] == {"Ref": "AWS::StackName"}
    (passing,) = [s for s in statements("StateMachineRole", "sagemaker") if "iam:PassRole" in s["Action"]]
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Resource"] == {"Fn::GetAtt": ["SageMakerTrainingRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    events = grants("StateMachineRole", "events", "sagemaker")
    assert set(events) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert all(r[0].endswith(':rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"}') for r in events.values())


def test_the_training_jobs_role_reads_the_dataset_and_code_and_writes_only_the_model() -> None:
    role = "SageMakerTrainingRole"
    trust = deployed("sagemaker")["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [t["Principal"] for t in trust] == [{"Service": "sagemaker.amazonaws.com"}]
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    s3 = grants(role, "s3", "sagemaker")
    assert set(s3) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    read = "".join(s3["s3:GetObject"])
    assert "/artifacts/*/dataset-*/*" in read
    assert "/sagemaker/code/*" in read
    assert "/artifacts/*/model-*/*" in read
    written = [json.loads(r)["Fn::Sub"] for r in s3["s3:PutObject"]]
    assert written == ["${ArtifactsBucket.Arn}/artifacts/*/model-*/*", "${ArtifactsBucket.Arn}/sagemaker/output/*"]
    assert "ModelsBucket" not in json.dumps(statements(role, "sagemaker"))  # never the published models
    logs = grants(role, "logs", "sagemaker")
    assert all(":log-group:/aws/sagemaker/TrainingJobs:*" in r for (r,) in logs.values())
    pull = grants(role, "ecr", "sagemaker")["ecr:BatchGetImage"]
    assert "repository/sagemaker-scikit-learn" in pull[0]
    assert "ScikitLearnImageRegistry" in pull[0]
    custom = [
        s
        for s in deployed("sagemaker", False)["Resources"][role]["Properties"]["Policies"][1]["PolicyDocument"][
            "Statement"
        ]
        if "ecr:BatchGetImage" in s["Action"]
    ]
    assert custom[0]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/*"
    }


def test_with_sagemaker_the_plan_writes_only_the_staged_code() -> None:
    s3 = grants("PlanRole", "s3", "sagemaker")
    assert s3["s3:PutObject"] == ['{"Fn::Sub": "${ArtifactsBucket.Arn}/sagemaker/code/*"}']


def test_only_plan_and_download_read_the_source_locations_and_only_the_download_decrypts() -> None:
    # Given a deployment with SourceLocations, SourceKmsKeyArn and TriggerOnUpload set
    resources_ = deployed("lambda", sources=True)["Resources"]
    source_arns = {
        "Fn::Split": [
            ",",
            {
                "Fn::Sub": [
                    "arn:aws:s3:::${Locations}*",
                    {"Locations": {"Fn::Join": ["*,arn:aws:s3:::", {"Fn::Split": [",", {"Ref": "SourceLocations"}]}]}},
                ]
            },
        ]
    }
    for role, resource in resources_.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                touches_source = "SourceLocations" in json.dumps(statement)
                # Then the source locations are read (GetObject: HeadObject and GET; GetObjectVersion: a version) by
                # the plan and the download, with exactly those actions, and by nobody else; nobody may list them
                assert touches_source == (role in {"PlanRole", "DownloadRole"} and statement.get("Sid") == "ReadSource")
                if touches_source:
                    assert sorted(actions) == ["s3:GetObject", "s3:GetObjectVersion"]
                    assert statement["Resource"] == source_arns
                if "kms:Decrypt" in actions:
                    assert role == "DownloadRole"
                    assert statement["Resource"] == {"Ref": "SourceKmsKeyArn"}
    text = json.dumps(deployed("lambda", sources=False)["Resources"])
    assert "SourceLocations" not in text.replace('"SOURCE_LOCATIONS": {"Ref": "SourceLocations"}', "")
    assert "UploadTriggerRule" not in text


def test_the_upload_trigger_may_only_start_this_state_machine() -> None:
    resources_ = deployed("lambda", sources=True)["Resources"]
    role = resources_["UploadTriggerRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "states:StartExecution"
    assert statement["Resource"] == {"Ref": "PipelineStateMachine"}
    rule = resources_["UploadTriggerRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["Targets"][0]["Arn"] == {"Ref": "PipelineStateMachine"}
