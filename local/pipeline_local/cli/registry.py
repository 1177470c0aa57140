"""``pipeline models put|list|remove|migrate``: the models of a deployment, their documents and their schedules.

A model's configuration document (``mlpipe.modelconfig``) goes to the deployment's model configs
(``--configs-uri``, or the stack's ``ModelConfigsUri`` output with ``--stack``), checked first with the
plan's own checks, offline: a document the plan would refuse is refused here and nothing is written.
With ``--stack`` its ``schedule`` becomes an EventBridge Scheduler schedule named after the model in
the stack's schedule group, with the stack's schedule role and dead-letter queue, whose input names only
the model (the plan reads the rest from the document).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from mlpipe.champion import read_champion
from mlpipe.config import Settings
from mlpipe.exceptions import (
    InvalidModelConfigError,
    InvalidRequestError,
    PipelineError,
    StorageError,
    TargetExistsError,
    UnknownModelError,
)
from mlpipe.modelconfig import config_uri, list_configs, validate_config
from mlpipe.naming import CHAMPION_FILE, HISTORY_DIR, check_model_name, model_location, models_under
from mlpipe.redaction import redact_url
from mlpipe.storage import Store
from pipeline_local.cli.common import failed

# The stack's outputs the commands need (template.yaml's Outputs).
OUTPUTS = ("ModelConfigsUri", "ScheduleGroupName", "ScheduleRoleArn", "ScheduleDeadLetterQueueArn", "StateMachineArn")
SCHEDULED_INPUT = {"trigger": "schedule", "scheduled_time": "<aws.scheduler.scheduled-time>"}


@dataclass(frozen=True)
class Deployment:
    """Where a deployment keeps its models' documents, and (in AWS) what their schedules start and with what."""

    configs_uri: str
    schedule_group: str | None = None
    schedule_role_arn: str | None = None
    dead_letter_arn: str | None = None
    state_machine_arn: str | None = None

    @property
    def schedules(self) -> bool:
        """Whether this deployment has a schedule group (a stack), so a document's schedule is made a schedule."""
        return bool(self.schedule_group and self.state_machine_arn and self.schedule_role_arn)


def deployment_of_stack(stack: str, cloudformation: Any = None) -> Deployment:
    """The deployment of CloudFormation stack ``stack``, from its outputs."""
    client = cloudformation or boto3.client("cloudformation")
    try:
        found = client.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except Exception as exc:  # botocore's ClientError or a connection error: said in one line
        raise InvalidRequestError(f"cannot read the outputs of stack {stack!r}: {exc}") from exc
    outputs = {entry["OutputKey"]: entry["OutputValue"] for entry in found}
    missing = [name for name in OUTPUTS if name not in outputs]
    if missing:
        raise InvalidRequestError(
            f"stack {stack!r} has no output(s) {', '.join(missing)}: deploy this version of template.yaml first"
        )
    return Deployment(
        configs_uri=outputs["ModelConfigsUri"],
        schedule_group=outputs["ScheduleGroupName"],
        schedule_role_arn=outputs["ScheduleRoleArn"],
        dead_letter_arn=outputs["ScheduleDeadLetterQueueArn"],
        state_machine_arn=outputs["StateMachineArn"],
    )


def put_model(
    deployment: Deployment,
    name: str,
    document: Any,
    *,
    store: Store,
    scheduler: Any = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Check ``document`` as model ``name``'s configuration, write it, and make (or update, or remove) its schedule.

    InvalidModelConfigError, and nothing written, when the plan would refuse it (the plan's ``settings``: by
    default a local deployment's, which may fetch from 127.0.0.1, or a stack's, which may not).
    """
    settings = settings or Settings(allow_loopback_sources=not deployment.schedules)
    where = store.target(config_uri(deployment.configs_uri, name)).uri
    checked = validate_config(name, document, settings, where=where)
    body = (json.dumps(checked, indent=2, sort_keys=True) + "\n").encode()
    store.target(where).write_bytes(body, overwrite=True)
    schedule = None
    if deployment.schedules:
        schedule = put_schedule(deployment, name, checked.get("schedule"), scheduler=scheduler)
    return {"model": name, "document": where, "schedule": schedule}


def put_schedule(
    deployment: Deployment, name: str, schedule: dict[str, Any] | None, *, scheduler: Any = None
) -> dict[str, Any] | None:
    """Model ``name``'s schedule in the deployment's group as ``schedule`` says; removed when it is None."""
    client = scheduler or boto3.client("scheduler")
    if schedule is None:
        delete_schedule(deployment, name, scheduler=client)
        return None
    request = {
        "Name": name,
        "GroupName": deployment.schedule_group,
        "ScheduleExpression": schedule["expression"],
        "ScheduleExpressionTimezone": schedule["timezone"],
        "State": "ENABLED" if schedule["enabled"] else "DISABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Description": f"mlpipe: a run of model {name} (its document: pipeline models list)",
        "Target": {
            "Arn": deployment.state_machine_arn,
            "RoleArn": deployment.schedule_role_arn,
            "Input": json.dumps({"model": name} | SCHEDULED_INPUT),
            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": deployment.dead_letter_arn},
        },
    }
    try:
        client.get_schedule(Name=name, GroupName=deployment.schedule_group)
    except client.exceptions.ResourceNotFoundException:
        client.create_schedule(**request)
    else:
        client.update_schedule(**request)
    return {"name": name, "group": deployment.schedule_group} | schedule


def delete_schedule(deployment: Deployment, name: str, *, scheduler: Any = None) -> bool:
    """Remove model ``name``'s schedule from the deployment's group; whether there was one."""
    client = scheduler or boto3.client("scheduler")
    try:
        client.delete_schedule(Name=name, GroupName=deployment.schedule_group)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True


def remove_model(deployment: Deployment, name: str, *, store: Store, scheduler: Any = None) -> dict[str, Any]:
    """Remove model ``name``'s document and schedule (its published models and champion stay where they are)."""
    target = store.target(config_uri(deployment.configs_uri, check_model_name(name)))
    if not target.exists():
        known = ", ".join(list_configs(deployment.configs_uri, store=store)) or "none"
        raise UnknownModelError(f"there is no model {name!r}: no document at {target.uri} (the models are: {known})")
    removed = delete_schedule(deployment, name, scheduler=scheduler) if deployment.schedules else False
    target.delete()
    return {"model": name, "document": target.uri, "schedule_removed": removed}


def list_models(deployment: Deployment, *, store: Store, scheduler: Any = None) -> list[dict[str, Any]]:
    """Every model with a document: its estimator, source (without secrets) and schedule (from the group in AWS)."""
    schedules: dict[str, dict[str, Any]] = {}
    if deployment.schedules:
        client = scheduler or boto3.client("scheduler")
        for page in client.get_paginator("list_schedules").paginate(GroupName=deployment.schedule_group):
            for entry in page["Schedules"]:
                schedules[entry["Name"]] = entry
    found = []
    for name in list_configs(deployment.configs_uri, store=store):
        document = json.loads(store.target(config_uri(deployment.configs_uri, name)).read_bytes())
        source = document.get("source_url")
        found.append(
            {
                "model": name,
                "estimator": document.get("estimator"),
                "source_url": redact_url(source) if isinstance(source, str) else None,
                "schedule": document.get("schedule"),
                "scheduled": schedules.get(name, {}).get("State") if deployment.schedules else None,
            }
        )
    return found


def migrate(publish_root: str, model: str, *, store: Store) -> dict[str, Any]:
    """Copy a publish root from before models had names to model ``model``'s location: every published model
    (``<date>/published-*/``), the champion's history and ``champion.json``, each manifest naming the copies.

    The old objects stay (delete them once consumers read the new location); nothing existing is overwritten.
    """
    location = model_location(publish_root, model)
    legacy = store.target(store.join(publish_root, CHAMPION_FILE))
    if not legacy.exists():
        raise InvalidRequestError(f"there is no {legacy.uri}: nothing to migrate")
    if read_champion(location, store=store) is not None:
        raise InvalidRequestError(f"model {model} already has a champion at {location}: nothing was changed")
    old, new = store.target(publish_root).uri.rstrip("/") + "/", store.target(location).uri.rstrip("/") + "/"
    names = set(models_under(publish_root, store=store))
    copied = 0
    for item in store.list(publish_root):
        first = item.relative.split("/", 1)[0]
        if first in names or first == model or item.relative == CHAMPION_FILE:
            continue  # a named model's own, or the champion (written last)
        data = store.target(item.uri).read_bytes()
        if item.relative.startswith(HISTORY_DIR + "/"):
            data = _renamed(data, old, new, model)
        try:
            store.target(store.join(location, *item.relative.split("/"))).write_bytes(data)
            copied += 1
        except TargetExistsError:
            continue
    manifest = _renamed(legacy.read_bytes(), old, new, model)
    store.target(store.join(location, CHAMPION_FILE)).replace_if(manifest, None)
    return {"model": model, "location": location, "copied": copied, "champion": json.loads(manifest)["model_uri"]}


def _renamed(data: bytes, old: str, new: str, model: str) -> bytes:
    """A manifest (or history entry) whose model URIs point at the copies, naming its model."""
    manifest = json.loads(data)

    def move(entry: Any) -> Any:
        if isinstance(entry, dict):
            entry = {key: move(value) for key, value in entry.items()}
            if isinstance(entry.get("model_uri"), str) and entry["model_uri"].startswith(old):
                entry["model_uri"] = new + entry["model_uri"][len(old) :]
                entry["model"] = model
        return entry

    return (json.dumps(move(manifest), indent=2, sort_keys=True) + "\n").encode()


def models(args: argparse.Namespace) -> int:
    """``pipeline models put|list|remove|migrate``."""
    store = Store.on_this_machine()
    try:
        if args.models_command == "migrate":
            result: Any = migrate(args.publish_uri, args.model, store=store)
            print(
                f"migrated to model {result['model']}: {result['copied']} objects copied to {result['location']}; "
                f"the champion is {result['champion']} (the old objects stay until you delete them)"
            )
            return 0
        deployment = deployment_of_stack(args.stack) if args.stack else Deployment(configs_uri=args.configs_uri)
        if args.models_command == "put":
            result = put_model(deployment, args.name, _document(args.config), store=store)
            schedule = result["schedule"]
            shown = (
                f"; schedule {schedule['expression']} ({schedule['timezone']}) in group {schedule['group']}"
                if schedule
                else "; no schedule" + ("" if deployment.schedules else " here (schedules are made with --stack)")
            )
            print(f"model {args.name}: wrote {result['document']}{shown}")
        elif args.models_command == "remove":
            result = remove_model(deployment, args.name, store=store)
            gone = "and its schedule " if result["schedule_removed"] else ""
            print(f"model {args.name}: removed {result['document']} {gone}(its published models and champion stay)")
        else:
            found = list_models(deployment, store=store)
            if args.json:
                print(json.dumps(found, indent=2))
            for entry in [] if args.json else found:
                when = entry["schedule"]["expression"] if entry["schedule"] else "on demand"
                state = f" [{entry['scheduled']}]" if entry["scheduled"] else ""
                print(
                    f"{entry['model']:<20} {entry['estimator'] or '(default)':<24} {when}{state}  {entry['source_url']}"
                )
            if not found and not args.json:
                print(f"no model documents under {deployment.configs_uri}")
    except (PipelineError, StorageError, OSError) as exc:
        return failed(f"models {args.models_command}", exc)
    return 0


def _document(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidModelConfigError(f"{path} is not JSON: {exc}; nothing was changed") from exc
