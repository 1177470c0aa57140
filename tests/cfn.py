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
