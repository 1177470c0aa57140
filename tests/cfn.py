"""The template and the ASL file as the tests read them: the template as written, after the SAM transform, and the
state machine's definition with its ``${...}`` placeholders substituted (it is not JSON before that)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import yaml
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from pipeline_local.runner import ASL_PATH, SUBSTITUTIONS
from tests.conftest import REPO


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping short-form intrinsics (!Ref, !Sub, ...) as {"Fn": value}."""


_CfnLoader.add_multi_constructor(
    "!",
    lambda loader, tag, node: {
        tag: (
            loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_mapping(node)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node)
        )
    },
)


def template() -> dict[str, Any]:
    """template.yaml as written; a short-form intrinsic is a one-key dict without the "!" (``{"Ref": ...}``)."""
    return dict(yaml.load((REPO / "template.yaml").read_text(), Loader=_CfnLoader))


def asl_text() -> str:
    """The ASL file as written, placeholders and all."""
    return ASL_PATH.read_text()


def asl(substitutions: dict[str, str] | None = None) -> dict[str, Any]:
    """The state machine's definition, parsed after substituting its placeholders (the local runner's values)."""
    definition = asl_text()
    for key, value in (SUBSTITUTIONS if substitutions is None else substitutions).items():
        definition = definition.replace("${" + key + "}", value)
    return dict(json.loads(definition))


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@cache
def transformed() -> dict[str, Any]:
    """template.yaml after the SAM transform, as CloudFormation receives it (code locations made S3 URIs)."""
    parsed = yaml_parse((REPO / "template.yaml").read_text())
    for resource in parsed["Resources"].values():  # the translator wants S3 locations, as after `sam package`
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in properties:
                properties[key] = f"s3://bucket/{key}"
    result: dict[str, Any] = transform(parsed, {}, _NoManagedPolicies())
    return result


NO_VALUE = {"Ref": "AWS::NoValue"}


def _resolve(node: Any, conditions: dict[str, bool]) -> Any:
    """``node`` with each ``Fn::If`` on one of ``conditions`` replaced by its branch and ``AWS::NoValue`` dropped."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"} and node["Fn::If"][0] in conditions:
            name, yes, no = node["Fn::If"]
            return _resolve(yes if conditions[name] else no, conditions)
        resolved = {key: _resolve(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != NO_VALUE}
    if isinstance(node, list):
        return [item for item in (_resolve(value, conditions) for value in node) if item != NO_VALUE]
    return node


@cache
def deployed(train_on: str = "lambda", prebuilt_image: bool = True, sources: bool = False) -> dict[str, Any]:
    """The transformed template as a deployment with ``TrainOn=train_on`` gets it: the SageMaker conditions decided,
    and with ``sources`` SourceLocations, SourceKmsKeyArn and TriggerOnUpload set (else left at their defaults).

    Resources whose Condition is one of them and false are left out; other conditions stay as written.
    """
    conditions = {"TrainOnSageMaker": train_on == "sagemaker", "PrebuiltTrainingImage": prebuilt_image}
    conditions |= dict.fromkeys(("HasSourceLocations", "HasSourceKmsKey", "UploadTrigger"), sources)
    template = _resolve(transformed(), conditions)
    template["Resources"] = {
        name: resource
        for name, resource in template["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    return dict(template)
