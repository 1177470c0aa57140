"""Read a SAM template (template.yaml, or the one ``sam build`` writes) as the benches need it.

For each function: its code directory, its layers (Globals' first, then its own, as SAM merges
lists), MemorySize, Timeout and the environment Lambda would give it: the template's variables
(Globals merged with the function's own) with intrinsics resolved against the parameters'
defaults, plus the variables the Lambda service itself sets.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# PyYAML has no type hints (and requirements/dev.txt no types-PyYAML): use it as Any.
yaml: Any = importlib.import_module("yaml")

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::StackName": "mlpipe-bench",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/mlpipe-bench/bench",
    "AWS::URLSuffix": "amazonaws.com",
}
# SAM's own defaults, for properties that neither Globals nor the function set.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3


class UnresolvableError(ValueError):
    """An intrinsic function this small resolver does not evaluate."""


def _intrinsic(loader: Any, _suffix: str, node: Any) -> dict[str, Any]:
    """Short form to long: ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt a.b`` -> ``{"Fn::GetAtt": [a, b]}``, ..."""
    tag = node.tag[1:]
    name = tag if tag in {"Ref", "Condition"} else f"Fn::{tag}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader: Any = type("_CfnLoader", (yaml.SafeLoader,), {})
_Loader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Function:
    """One AWS::Serverless::Function, with Globals applied."""

    logical_id: str
    name: str  # the directory name under functions/ (plan, download, train, upload, report)
    code_uri: str
    layers: tuple[str, ...]  # logical ids of layers in this template, or ARNs of others
    memory_mb: int
    timeout_s: int
    handler: str
    tracing: bool
    environment: dict[str, str]


class Template:
    """A parsed SAM template with a resolver for the intrinsics that environment variables use."""

    def __init__(self, path: Path | str, parameters: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.doc: dict[str, Any] = yaml.load(self.path.read_text(), Loader=_Loader)
        self.resources: dict[str, Any] = self.doc.get("Resources") or {}
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in (self.doc.get("Parameters") or {}).items()
        }
        self.parameters.update(parameters or {})
        self.conditions: dict[str, Any] = self.doc.get("Conditions") or {}
        self.globals: dict[str, Any] = (self.doc.get("Globals") or {}).get("Function") or {}

    # --- intrinsics ---------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """Evaluate Ref, Sub, GetAtt, If, Join, Select and conditions; resources become fake names."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        ((key, arg),) = value.items()
        evaluate = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
        }.get(key)
        if evaluate is not None:
            return evaluate(arg)
        if key.startswith("Fn::") or key == "Condition":
            raise UnresolvableError(f"{key} is not resolved by bench/samtemplate.py")
        return {key: self.resolve(arg)}

    def _get_att(self, arg: Any) -> str:
        resource, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return f"{self._ref(resource)}-{str(attribute).lower()}"

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
        substituted = re.sub(r"\$\{([^}!][^}]*)\}", lambda m: self._sub_variable(m.group(1), variables), text)
        return substituted.replace("${!", "${")  # ${!Literal} is the escape for a literal ${Literal}

    def _if(self, arg: Any) -> Any:
        condition, when_true, when_false = arg
        return self.resolve(when_true if self.condition(condition) else when_false)

    def _join(self, arg: Any) -> str:
        separator, items = arg
        return str(separator).join(str(item) for item in self.resolve(items))

    def _select(self, arg: Any) -> Any:
        index, items = arg
        return self.resolve(items)[int(self.resolve(index))]

    def condition(self, name_or_expr: Any) -> bool:
        """The truth of a named condition or a condition expression."""
        expr = self.conditions[name_or_expr] if isinstance(name_or_expr, str) else name_or_expr
        ((key, arg),) = expr.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.condition(arg[0])
        if key == "Fn::And":
            return all(self.condition(item) for item in arg)
        if key == "Fn::Or":
            return any(self.condition(item) for item in arg)
        if key == "Condition":
            return self.condition(arg)
        raise UnresolvableError(f"condition {key} is not resolved by bench/samtemplate.py")

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.resources:
            return f"bench-{name.lower()}"  # a physical name stands in (bucket names are lower case)
        raise UnresolvableError(f"Ref {name} names nothing in {self.path}")

    def _sub_variable(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if "." in name:
            resource, attribute = name.split(".", 1)
            return str(self.resolve({"Fn::GetAtt": [resource, attribute]}))
        return str(self._ref(name))

    # --- functions ----------------------------------------------------------------------------
    def functions(self) -> list[Function]:
        """Every AWS::Serverless::Function, in template order."""
        return [
            self.function(logical_id)
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == "AWS::Serverless::Function"
        ]

    def function(self, logical_id: str) -> Function:
        """One function, with Globals applied (maps merged, lists appended, scalars overridden)."""
        props: dict[str, Any] = self.resources[logical_id].get("Properties") or {}

        def prop(name: str, default: Any = None) -> Any:
            return props.get(name, self.globals.get(name, default))

        layers = [*(self.globals.get("Layers") or []), *(props.get("Layers") or [])]
        layer_ids = tuple(
            layer["Ref"] if isinstance(layer, dict) and "Ref" in layer else str(layer) for layer in layers
        )
        variables = {
            **((self.globals.get("Environment") or {}).get("Variables") or {}),
            **((props.get("Environment") or {}).get("Variables") or {}),
        }
        environment: dict[str, str] = {}
        for key, raw in variables.items():
            try:
                value = self.resolve(raw)
            except (UnresolvableError, KeyError, IndexError, TypeError, ValueError) as exc:
                raise UnresolvableError(f"{logical_id}: environment variable {key}: {exc}") from exc
            environment[key] = str(value).lower() if isinstance(value, bool) else str(value)
        code_uri = str(prop("CodeUri", ""))
        return Function(
            logical_id=logical_id,
            name=function_name(logical_id, code_uri),
            code_uri=code_uri,
            layers=layer_ids,
            memory_mb=int(self.resolve(prop("MemorySize", DEFAULT_MEMORY_MB))),
            timeout_s=int(self.resolve(prop("Timeout", DEFAULT_TIMEOUT_S))),
            handler=str(prop("Handler", "app.lambda_handler")),
            tracing=str(self.resolve(prop("Tracing", "PassThrough"))) == "Active",
            environment=environment,
        )

    def layer_content_uri(self, logical_id: str) -> str | None:
        """ContentUri of a layer defined in this template, or None for an external one (an ARN)."""
        resource = self.resources.get(logical_id)
        if not resource or resource.get("Type") not in {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}:
            return None
        props = resource.get("Properties") or {}
        uri = props.get("ContentUri", props.get("Content"))
        return str(uri) if isinstance(uri, str) else None


def function_name(logical_id: str, code_uri: str) -> str:
    """``functions/train/`` -> ``train``; in a built template (CodeUri ``TrainFunction``) from the logical id."""
    path = Path(code_uri.rstrip("/"))
    if path.parent.name == "functions":
        return path.name
    return re.sub(r"Function$", "", logical_id).lower()


def lambda_environment(function: Function, task_root: Path | str, *, region: str = REGION) -> dict[str, str]:
    """What Lambda's python3.12 runtime sets, then the template's variables (the template wins on a clash)."""
    env = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": function.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    if function.tracing:
        env |= {"AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000"}
    return env | function.environment
