"""No JSON the pipeline writes holds NaN or Infinity, which JSON parsers reject (issue "Trust").

Non-finite hyperparameters are refused in the plan, naming the parameter; and every ``json.dumps``
in the package and the handlers passes ``allow_nan=False``, so a non-finite number that gets
through anyway fails the write instead of writing a file other programs cannot read.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from mlpipe import artifacts
from mlpipe.config import Run, Settings
from mlpipe.estimators import validate_hyperparameters
from mlpipe.exceptions import InvalidHyperparametersError
from tests.conftest import REPO
from tests.stores import store
from tests.stores import target as target_for


@pytest.mark.parametrize(
    ("estimator", "params", "named"),
    [
        ("svc", json.loads('{"C": Infinity}'), "C"),
        ("svc", json.loads('{"C": NaN}'), "C"),
        ("svc", json.loads('{"C": -Infinity}'), "C"),
        ("svc", json.loads('{"C": 1e400}'), "C"),  # Python's JSON reads an overflowing number as infinity
        ("svc", {"C": 10**400}, "C"),  # an integer no float can hold
        ("svc", json.loads('{"class_weight": {"a": Infinity}}'), "class_weight"),
        ("logistic_regression", json.loads('{"tol": NaN, "C": 2.0}'), "tol"),
        ("random_forest", json.loads('{"ccp_alpha": Infinity}'), "ccp_alpha"),
        ("hist_gradient_boosting", json.loads('{"l2_regularization": Infinity}'), "l2_regularization"),
    ],
)
def test_non_finite_hyperparameters_are_refused_naming_the_parameter(
    estimator: str, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidHyperparametersError, match=rf"\b{named}\b.*not a finite number"):
        validate_hyperparameters(estimator, params)


def test_the_plan_refuses_them_too() -> None:
    settings = Settings(artifact_root="/unused", publish_uri="/unused", allow_local_storage=True)
    event = {"run_date": "2026-11-25", "model_uri": "/m/model.pkl", "dataset_uri": "/d/dataset.csv"}
    with pytest.raises(InvalidHyperparametersError, match=r"\bC\b.*not a finite number"):
        Run.from_event(
            event | {"hyperparameters": {"C": math.inf}}, settings, needs=("hyperparameters",), store=store()
        )


def test_a_card_with_a_non_finite_number_is_not_written(tmp_path: Path) -> None:
    model = target_for(str(tmp_path / "model" / "model.pkl"))
    with pytest.raises(ValueError, match="not JSON compliant"):
        artifacts.write_model(model, b"model", {"model_sha256": "x", "training_accuracy": math.nan})
    assert not (tmp_path / "model").exists() or not any((tmp_path / "model").iterdir())


SOURCES = [
    *sorted((REPO / "layers" / "core" / "python" / "mlpipe").rglob("*.py")),
    *sorted((REPO / "functions").rglob("*.py")),
]


def dumps_without_allow_nan(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"dumps", "dump"}
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "json"
        ):
            allow = [k for k in node.keywords if k.arg == "allow_nan"]
            if not (allow and isinstance(allow[0].value, ast.Constant) and allow[0].value.value is False):
                lines.append(node.lineno)
    return lines


def test_every_json_the_pipeline_writes_refuses_nan() -> None:
    found = {str(path.relative_to(REPO)): lines for path in SOURCES if (lines := dumps_without_allow_nan(path))}
    assert found == {}
