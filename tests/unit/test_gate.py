"""The quality gate on its own (mlpipe.gate.evaluate): a card and the champion's manifest in, the decision out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from mlpipe.gate import evaluate

MODEL = "s3://artifacts/runs/2026-11-25/model-abcd/model.pkl"


def card(accuracy: float, classes: Sequence[Any] = ("setosa", "versicolor")) -> dict[str, Any]:
    return {"model_sha256": "0" * 64, "cv_accuracy": {"mean": accuracy}, "classes": list(classes)}


def champion(accuracy: float | None, classes: Sequence[Any] = ("setosa", "versicolor")) -> dict[str, Any]:
    return {"identity": "published-champ", "metrics": {"cv_accuracy": accuracy}, "classes": list(classes)}


def gate(
    accuracy: float,
    current: dict[str, Any] | None = None,
    *,
    min_cv_accuracy: float | None = None,
    max_regression: float | None = None,
    classes: Sequence[Any] = ("setosa", "versicolor"),
    accept_schema_change: bool = False,
) -> dict[str, Any]:
    return evaluate(
        card(accuracy, classes),
        current,
        model_uri=MODEL,
        min_cv_accuracy=min_cv_accuracy,
        max_regression=max_regression,
        accept_schema_change=accept_schema_change,
    )


def test_no_rule_has_no_threshold_and_passes_any_model() -> None:
    result = gate(0.1, champion(0.99))
    assert result["threshold"] is None
    assert result["passed"] is True
    assert result["reason"] == "no gate applies (min_cv_accuracy, max_regression and min_lift_over_baseline are off)"


@pytest.mark.parametrize(("accuracy", "passed"), [(0.95, True), (0.9, True), (0.8999, False)])
def test_min_cv_accuracy_alone_is_the_threshold_and_a_model_at_it_passes(accuracy: float, passed: bool) -> None:
    result = gate(accuracy, None, min_cv_accuracy=0.9)
    assert result["threshold"] == 0.9
    assert result["passed"] is passed
    assert result["cv_accuracy"] == accuracy
    assert "(min_cv_accuracy 0.9000)" in result["reason"]


def test_a_passing_model_is_told_the_numbers() -> None:
    assert gate(0.95, None, min_cv_accuracy=0.9)["reason"] == (
        "CV accuracy 0.9500 meets the threshold 0.9000 (min_cv_accuracy 0.9000)"
    )


def test_max_regression_applies_against_a_champion_of_the_same_label_set_in_any_order() -> None:
    result = gate(0.93, champion(0.97, ["versicolor", "setosa"]), max_regression=0.05)
    assert result["threshold"] == pytest.approx(0.92)
    assert result["passed"] is True
    assert "the champion published-champ's 0.9700 less max_regression 0.0500 = 0.9200" in result["reason"]
    assert (result["champion_identity"], result["champion_cv_accuracy"]) == ("published-champ", 0.97)


def test_max_regression_compares_labels_as_text() -> None:
    result = gate(0.5, champion(0.97, [0, 1]), max_regression=0.05, classes=["0", "1"])
    assert result["threshold"] == pytest.approx(0.92)
    assert result["passed"] is False


def test_max_regression_does_not_apply_against_a_champion_of_another_label_set_and_says_so() -> None:
    result = gate(0.5, champion(0.97, ["setosa", "virginica"]), max_regression=0.05, accept_schema_change=True)
    assert result["threshold"] is None
    assert result["passed"] is True
    assert result["reason"].endswith("; max_regression does not apply: the champion was trained on another label set")


def test_another_label_set_leaves_min_cv_accuracy_as_the_rule_and_still_says_why() -> None:
    result = gate(
        0.85, champion(0.97, ["x", "y", "z"]), min_cv_accuracy=0.8, max_regression=0.01, accept_schema_change=True
    )
    assert result["threshold"] == 0.8
    assert result["passed"] is True
    assert "(min_cv_accuracy 0.8000)" in result["reason"]
    assert "max_regression does not apply" in result["reason"]


@pytest.mark.parametrize("current", [None, champion(None)])
def test_max_regression_without_a_champion_accuracy_does_not_apply(current: dict[str, Any] | None) -> None:
    result = gate(0.1, current, max_regression=0.01)
    assert result["threshold"] is None
    assert result["passed"] is True


def test_the_champion_rule_wins_when_it_is_the_stricter() -> None:
    result = gate(0.93, champion(0.97), min_cv_accuracy=0.9, max_regression=0.02)
    assert result["threshold"] == pytest.approx(0.95)
    assert result["passed"] is False
    assert "less max_regression 0.0200 = 0.9500" in result["reason"]
    assert "(min_cv_accuracy" not in result["reason"]


def test_min_cv_accuracy_wins_when_it_is_the_stricter() -> None:
    result = gate(0.95, champion(0.97), min_cv_accuracy=0.96, max_regression=0.05)
    assert result["threshold"] == 0.96
    assert result["passed"] is False
    assert "(min_cv_accuracy 0.9600)" in result["reason"]
    assert "less max_regression" not in result["reason"]


def test_a_rejection_names_the_model_the_numbers_and_the_champion() -> None:
    result = gate(0.8, champion(0.95), min_cv_accuracy=0.9, max_regression=0.1)
    assert result["passed"] is False
    assert result["reason"].startswith(
        f"model {MODEL} is rejected: its CV accuracy 0.8000 is below the threshold 0.9000 (min_cv_accuracy 0.9000)"
        "; the champion published-champ has 0.9500."
    )
    assert "nothing was published and the champion is unchanged" in result["reason"]


def test_a_rejection_without_a_champion_says_there_is_none_yet() -> None:
    result = gate(0.8, None, min_cv_accuracy=0.9, max_regression=0.1)
    assert "(min_cv_accuracy 0.9000); there is no champion yet." in result["reason"]


def test_the_result_carries_the_rules_and_a_card_without_accuracy_counts_as_zero() -> None:
    result = evaluate({"model_sha256": "0" * 64}, None, model_uri=MODEL, min_cv_accuracy=0.5, max_regression=0.02)
    expected = {
        "cv_accuracy": 0.0,
        "threshold": 0.5,
        "min_cv_accuracy": 0.5,
        "max_regression": 0.02,
        "champion_identity": None,
        "champion_cv_accuracy": None,
        "passed": False,
    }
    assert {name: result[name] for name in expected} == expected


def test_another_label_set_is_refused_as_a_schema_change_whatever_the_score() -> None:
    result = gate(0.99, champion(0.5, ["setosa", "virginica"]))
    assert result["passed"] is False
    assert result["schema_changed"] is True
    assert result["error"] == "SchemaChangedError"
    assert "no longer predicted 'virginica'" in result["reason"]
    assert "new classes 'versicolor'" in result["reason"]


def test_a_changed_feature_schema_names_each_difference() -> None:
    ours = card(0.9) | {
        "input": {"columns": ["a", "c", "d"]},
        "dataset": {"resolved": {"kinds": {"a": "numeric", "c": "categorical", "d": "numeric"}}},
    }
    theirs = champion(0.9) | {"features": [["a", "numeric"], ["b", "numeric"], ["c", "numeric"]]}
    result = evaluate(ours, theirs, model_uri=MODEL, min_cv_accuracy=None, max_regression=None)
    assert result["schema_changed"] is True
    assert "no longer taken: 'b'" in result["reason"]
    assert "new feature column(s) required: 'd'" in result["reason"]
    assert "'c' numeric -> categorical" in result["reason"]


def test_the_same_schema_and_an_older_champion_without_features_pass() -> None:
    assert gate(0.9, champion(0.95))["schema_changed"] is False
    assert gate(0.9, None)["error"] is None


def test_the_same_features_in_the_same_order_pass_and_another_order_is_named() -> None:
    ours = card(0.9) | {
        "input": {"columns": ["b", "a"]},
        "dataset": {"resolved": {"kinds": {"a": "numeric", "b": "numeric"}}},
    }
    same = champion(0.9) | {"features": [["b", "numeric"], ["a", "numeric"]]}
    swapped = champion(0.9) | {"features": [["a", "numeric"], ["b", "numeric"]]}
    assert evaluate(ours, same, model_uri=MODEL, min_cv_accuracy=None, max_regression=None)["passed"] is True
    refused = evaluate(ours, swapped, model_uri=MODEL, min_cv_accuracy=None, max_regression=None)
    assert "the feature columns' order changes" in refused["reason"]
