"""The quality gate: is a trained model good enough to publish? Decided on its card and the current champion.

Two rules, each off unless set (deploy-time ``MinCvAccuracy`` / ``MaxRegression``, or per run):

- ``min_cv_accuracy``: a model whose cross-validated accuracy is below it is not published;
- ``max_regression``: a model is not published when its CV accuracy is more than this below the
  current champion's, when both were trained on the same label set.

A third, ``max_drift`` (``drift_rule``), rejects a model whose data drifted from the champion's data
contract more than that on some feature (the card's ``drift`` section, ``mlpipe.contract``).

Pure: ``evaluate`` decides on a card and the champion's manifest given to it; a run's gate (with
the champion read from its publish location) is ``mlpipe.planning.model_gate``, the one place the
plan and the train task both ask. It returns the numbers the state machine's Choice state ("Is the
model good enough?") compares, ``cv_accuracy`` against ``threshold`` (the stricter of the two
rules, or null when neither applies), and the reason in words, which the run's summary carries.
"""

from __future__ import annotations

from typing import Any


def evaluate(
    card: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    model_uri: str,
    min_cv_accuracy: float | None,
    max_regression: float | None,
) -> dict[str, Any]:
    """``{"cv_accuracy", "threshold", "min_cv_accuracy", "max_regression", "champion_*", "passed", "reason"}``."""
    accuracy = float((card.get("cv_accuracy") or {}).get("mean", 0.0))
    champion_accuracy = None
    same_labels = False
    if champion is not None:
        champion_accuracy = (champion.get("metrics") or {}).get("cv_accuracy")
        same_labels = sorted(map(str, champion.get("classes") or [])) == sorted(map(str, card.get("classes") or []))
    limits: list[tuple[float, str]] = []
    if min_cv_accuracy is not None:
        limits.append((min_cv_accuracy, f"min_cv_accuracy {min_cv_accuracy:.4f}"))
    notes = []
    if max_regression is not None and isinstance(champion_accuracy, int | float):
        if same_labels:
            floor = float(champion_accuracy) - max_regression
            limits.append(
                (
                    floor,
                    f"the champion {champion.get('identity') if champion else ''}'s {champion_accuracy:.4f} "
                    f"less max_regression {max_regression:.4f} = {floor:.4f}",
                )
            )
        else:
            notes.append("max_regression does not apply: the champion was trained on another label set")
    threshold, rule = max(limits, default=(None, ""))
    passed = threshold is None or accuracy >= threshold
    if threshold is None:
        reason = "no gate applies (min_cv_accuracy and max_regression are off)"
    elif passed:
        reason = f"CV accuracy {accuracy:.4f} meets the threshold {threshold:.4f} ({rule})"
    else:
        champion_text = (
            f"; the champion {champion.get('identity')} has {champion_accuracy:.4f}"
            if champion and isinstance(champion_accuracy, int | float)
            else "; there is no champion yet"
            if champion is None
            else ""
        )
        reason = (
            f"model {model_uri} is rejected: its CV accuracy {accuracy:.4f} is below the threshold {threshold:.4f} "
            f"({rule}){champion_text}. It stays in the artifacts for inspection; nothing was published and the "
            "champion is unchanged. Lower the threshold and rerun to publish it without retraining."
        )
    if notes:
        reason += "; " + "; ".join(notes)
    return {
        "cv_accuracy": accuracy,
        "threshold": threshold,
        "min_cv_accuracy": min_cv_accuracy,
        "max_regression": max_regression,
        "champion_identity": champion.get("identity") if champion else None,
        "champion_cv_accuracy": champion_accuracy,
        "passed": passed,
        "reason": reason,
    }


def drift_rule(card: dict[str, Any], max_drift: float | None) -> str | None:
    """Why the model is rejected for drift (each feature over ``max_drift``, with its measure), or None."""
    features = ((card.get("drift") or {}).get("features")) or {}
    if max_drift is None or not features:
        return None
    over = sorted((name, entry) for name, entry in features.items() if (entry.get("value") or 0.0) > max_drift)
    if not over:
        return None
    listed = ", ".join(f"{name!r} ({entry.get('measure')} {entry['value']:.4f})" for name, entry in over)
    return (
        f"its data drifted from the champion's data contract more than max_drift {max_drift:.4f} on {listed}. "
        "It stays in the artifacts for inspection; nothing was published and the champion is unchanged. If the "
        "change in the data is expected, rerun with a larger max_drift (or none) to publish it without retraining"
    )
