"""The quality gate: is a trained model good enough to publish? Decided on its card and the current champion.

The gate reads the card's primary score (``card_score``): CV accuracy for classification, CV R²
for regression (both higher-is-better, in the card's ``score``; an older card's
``cv_accuracy.mean``). Three rules, the first two off unless set (deploy-time ``MinCvAccuracy`` /
``MaxRegression`` / ``MinLiftOverBaseline``, or per run):

- ``min_cv_accuracy``: a model whose score is below it is not published (for regression it is the
  minimum R²: the name is kept for compatibility);
- ``max_regression``: a model is not published when its score is more than this below the current
  champion's, when both were trained on the same label set (in the score's units);
- ``min_lift_over_baseline`` (``baseline_rule``; default 0, null: off): the score must be above
  the trivial predictor's (the majority class, or the mean predictor, under the same splits) by
  more than this; with 0, the model must beat the baseline strictly.

Pure: ``evaluate`` decides on a card and the champion's manifest given to it; a run's gate (with
the champion read from its publish location) is ``mlpipe.planning.model_gate``, the one place the
plan and the train task both ask. It returns the numbers the state machine's Choice state ("Is the
model good enough?") compares, ``score`` against ``threshold`` (the strictest rule, or null when
none applies), ``passed`` (which the Choice also reads: the baseline rule is strict), and the reason
in words, which the run's summary carries.
"""

from __future__ import annotations

from typing import Any

SCORE_WORDS = {"cv_accuracy": "CV accuracy", "cv_r2": "CV R²"}


def card_score(card: dict[str, Any]) -> tuple[str, float]:
    """The card's primary score ``(name, value)``: its ``score``, or for an older card ``cv_accuracy.mean``."""
    score = card.get("score")
    if isinstance(score, dict) and isinstance(score.get("value"), int | float):
        return str(score.get("name") or "cv_accuracy"), float(score["value"])
    return "cv_accuracy", float((card.get("cv_accuracy") or {}).get("mean", 0.0))


def champion_score(champion: dict[str, Any]) -> tuple[str, float | None]:
    """The champion manifest's score ``(name, value)``: ``metrics.score``, or for an older one ``cv_accuracy``."""
    metrics = champion.get("metrics") or {}
    value = metrics.get("score")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(metrics.get("score_name") or "cv_accuracy"), float(value)
    value = metrics.get("cv_accuracy")
    return "cv_accuracy", float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def baseline_rule(card: dict[str, Any], min_lift: float | None) -> tuple[float, str] | None:
    """The baseline rule's floor and its words, or None when it is off or the card records no baseline."""
    baseline = (card.get("score") or {}).get("baseline") if isinstance(card.get("score"), dict) else None
    if min_lift is None or not isinstance(baseline, int | float) or isinstance(baseline, bool):
        return None
    name = (card.get("score") or {}).get("baseline_name") or "the trivial predictor"
    return float(baseline) + min_lift, (
        f"the baseline ({name}) {float(baseline):.4f} plus min_lift_over_baseline {min_lift:.4f}, to be beaten"
    )


def evaluate(
    card: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    model_uri: str,
    min_cv_accuracy: float | None,
    max_regression: float | None,
    min_lift_over_baseline: float | None = None,
) -> dict[str, Any]:
    """``{"score", "score_name", "cv_accuracy", "threshold", "min_cv_accuracy", "max_regression",
    "min_lift_over_baseline", "baseline", "champion_*", "passed", "reason"}``."""
    score_name, score = card_score(card)
    words = SCORE_WORDS.get(score_name, score_name)
    champion_value = None
    same_labels, other = False, "another label set"
    if champion is not None:
        champion_name, champion_value = champion_score(champion)
        same_labels = sorted(map(str, champion.get("classes") or [])) == sorted(map(str, card.get("classes") or []))
        if champion_name != score_name:
            same_labels, other = False, f"another task (its score is {champion_name})"
    limits: list[tuple[float, str, bool]] = []  # (floor, words, strict)
    if min_cv_accuracy is not None:
        limits.append((min_cv_accuracy, f"min_cv_accuracy {min_cv_accuracy:.4f}", False))
    notes = []
    if max_regression is not None and champion_value is not None:
        if same_labels:
            floor = champion_value - max_regression
            limits.append(
                (
                    floor,
                    f"the champion {champion.get('identity') if champion else ''}'s {champion_value:.4f} "
                    f"less max_regression {max_regression:.4f} = {floor:.4f}",
                    False,
                )
            )
        else:
            notes.append(f"max_regression does not apply: the champion was trained on {other}")
    baseline = baseline_rule(card, min_lift_over_baseline)
    if baseline is not None:
        limits.append((*baseline, True))
    threshold, rule, _ = max(limits, default=(None, "", False))
    failed = [(floor, text) for floor, text, is_strict in limits if score < floor or (is_strict and score <= floor)]
    passed = not failed
    if threshold is None:
        reason = "no gate applies (min_cv_accuracy, max_regression and min_lift_over_baseline are off)"
    elif passed:
        reason = f"{words} {score:.4f} meets the threshold {threshold:.4f} ({rule})"
    else:
        floor, rule = max(failed)  # the strictest rule it fails
        champion_text = (
            f"; the champion {champion.get('identity')} has {champion_value:.4f}"
            if champion and champion_value is not None
            else "; there is no champion yet"
            if champion is None
            else ""
        )
        below = "not above" if score >= floor else "below"
        reason = (
            f"model {model_uri} is rejected: its {words} {score:.4f} is {below} the threshold {floor:.4f} "
            f"({rule}){champion_text}. It stays in the artifacts for inspection; nothing was published and the "
            "champion is unchanged. Lower the threshold (or turn its rule off) and rerun to publish it without "
            "retraining."
        )
    if notes:
        reason += "; " + "; ".join(notes)
    return {
        "score": score,
        "score_name": score_name,
        "cv_accuracy": score if score_name == "cv_accuracy" else None,
        "threshold": threshold,
        "min_cv_accuracy": min_cv_accuracy,
        "max_regression": max_regression,
        "min_lift_over_baseline": min_lift_over_baseline,
        "baseline": (card.get("score") or {}).get("baseline") if isinstance(card.get("score"), dict) else None,
        "champion_identity": champion.get("identity") if champion else None,
        "champion_cv_accuracy": champion_value if champion and champion_score(champion)[0] == "cv_accuracy" else None,
        "champion_score": champion_value,
        "passed": passed,
        "reason": reason,
    }
