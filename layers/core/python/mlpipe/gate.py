"""The quality gate: is a trained model good enough to publish? Decided on its card and the current champion.

The gate reads the card's primary score (``card_score``): CV accuracy for classification, CV R²
for regression (both higher-is-better, in the card's ``score``; an older card's
``cv_accuracy.mean``). Four rules, the first two off unless set (deploy-time ``MinCvAccuracy`` /
``MaxRegression`` / ``MinLiftOverBaseline``, or per run):

- ``min_cv_accuracy``: a model whose score is below it is not published (for regression it is the
  minimum R²: the name is kept for compatibility);
- ``max_regression``: a model is not published when its score is more than this below the current
  champion's, when both were trained on the same label set (in the score's units);
- ``min_lift_over_baseline`` (``baseline_rule``; default 0, null: off): the score must be above
  the trivial predictor's (the majority class, or the mean predictor, under the same splits) by
  more than this; with 0, the model must beat the baseline strictly.
- the schema rule (always on): a model whose label set or feature schema differs from the
  champion's is refused (``schema_changed``, ``error: SchemaChangedError``), whatever its score: a
  consumer of the champion would break (``schema_rule``).

A third, ``max_drift`` (``drift_rule``), rejects a model whose data drifted from the champion's data
contract more than that on some feature (the card's ``drift`` section, ``mlpipe.contract``).

Pure: ``evaluate`` decides on a card and the champion's manifest given to it; a run's gate (with
the champion read from its publish location) is ``mlpipe.planning.model_gate``, the one place the
plan and the train task both ask. It returns the numbers the state machine's Choice state ("Is the
model good enough?") compares, ``score`` against ``threshold`` (the strictest rule, or null when
none applies), ``passed`` (which the Choice also reads: the baseline rule is strict), and the reason
in words, which the run's summary carries.
"""

from __future__ import annotations

from typing import Any

# The card's score (``{"name", "value", ...}``); older cards have only ``cv_accuracy``.
FALLBACK_SCORE = "cv_accuracy"
SCORE_WORDS = {"cv_accuracy": "CV accuracy", "cv_r2": "CV R²"}


def section(document: dict[str, Any], name: str) -> dict[str, Any]:
    """``document[name]`` when it is an object, else an empty one (a card or manifest from an older version)."""
    found = document.get(name)
    return found if isinstance(found, dict) else {}


def card_score(card: dict[str, Any]) -> tuple[str, float | None]:
    """``(name, value)`` of a card's score: its ``score``, else (an older card) its mean CV accuracy."""
    score = card.get("score")
    if isinstance(score, dict) and isinstance(score.get("value"), int | float):
        return str(score.get("name") or FALLBACK_SCORE), float(score["value"])
    mean = section(card, "cv_accuracy").get("mean")
    return FALLBACK_SCORE, float(mean) if isinstance(mean, int | float) else None


def manifest_score(manifest: dict[str, Any]) -> tuple[str, float | None]:
    """``(name, value)`` of a champion manifest's score: ``metrics.score``, else (older) ``metrics.cv_accuracy``."""
    metrics = section(manifest, "metrics")
    value = metrics.get("score", metrics.get("cv_accuracy"))
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    return str(metrics.get("score_name") or FALLBACK_SCORE), None if number is None else float(number)


def score_words(name: str) -> str:
    """A score's name in words (``cv_accuracy`` → "CV accuracy")."""
    return SCORE_WORDS.get(name, name)


def baseline_rule(card: dict[str, Any], min_lift: float | None) -> tuple[float, str] | None:
    """The baseline rule's floor and its words, or None when it is off or the card records no baseline."""
    score = section(card, "score")
    baseline = score.get("baseline")
    if min_lift is None or not isinstance(baseline, int | float) or isinstance(baseline, bool):
        return None
    name = score.get("baseline_name") or "the trivial predictor"
    return float(baseline) + min_lift, (
        f"the baseline ({name}) {float(baseline):.4f} plus min_lift_over_baseline {min_lift:.4f}, to be beaten"
    )


def card_schema(card: dict[str, Any]) -> dict[str, Any]:
    """What a consumer of the model relies on: ``{"task", "classes": [...], "features": [[column, kind], ...]}`` from
    its card."""
    kinds = section(section(section(card, "dataset"), "resolved"), "kinds")
    columns = section(card, "input").get("columns")
    # A list of [column, kind], in the model's order: a JSON object written with sorted keys would lose the order.
    features = [[str(c), str(kinds.get(c, "unknown"))] for c in columns] if isinstance(columns, list) else None
    return {"task": task_of(card), "classes": card.get("classes"), "features": features}


def task_of(document: dict[str, Any]) -> str | None:
    """The task of a card or champion manifest: its ``task``, else what its score's name says (None: not known)."""
    task = document.get("task")
    if isinstance(task, str):
        return task
    name = section(document, "score").get("name")
    metrics = section(document, "metrics")
    name = name or metrics.get("score_name") or ("cv_accuracy" if "cv_accuracy" in metrics else None)
    return {"cv_r2": "regression", "cv_accuracy": "classification"}.get(str(name)) if name else None


def _features(value: Any) -> dict[str, str] | None:
    """``[[column, kind], ...]`` as an ordered ``{column: kind}``; None when it is not that."""
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        return None
    return {str(name): str(kind) for name, kind in value}


def schema_changes(champion: dict[str, Any] | None, schema: dict[str, Any]) -> list[str]:
    """Each difference between the champion's label set and feature schema and ``schema``'s (``card_schema``),
    in words; empty when they agree, there is no champion, or the champion does not record them."""
    if champion is None:
        return []
    changes = []
    before_task, after_task = task_of(champion), schema.get("task")
    if before_task and after_task and before_task != after_task:
        # Predictions change kind (class labels or numbers): the label sets are not comparable.
        return [f"the task changes: {before_task} -> {after_task} (its predictions are of another kind)"]
    theirs, ours = champion.get("classes"), schema.get("classes")
    if isinstance(theirs, list) and isinstance(ours, list) and sorted(map(str, theirs)) != sorted(map(str, ours)):
        gone = sorted(set(map(str, theirs)) - set(map(str, ours)))
        new = sorted(set(map(str, ours)) - set(map(str, theirs)))
        changes.append(
            "the label set changes"
            + (f": classes no longer predicted {', '.join(map(repr, gone))}" if gone else "")
            + (f"; new classes {', '.join(map(repr, new))}" if new else "")
        )
    before, after = _features(champion.get("features")), _features(schema.get("features"))
    if before is not None and after is not None:
        missing = [c for c in before if c not in after]
        added = [c for c in after if c not in before]
        kinds = [f"{c!r} {before[c]} -> {after[c]}" for c in before if c in after and before[c] != after[c]]
        if missing:
            changes.append(f"feature column(s) no longer taken: {', '.join(map(repr, missing))}")
        if added:
            changes.append(f"new feature column(s) required: {', '.join(map(repr, added))}")
        if kinds:
            changes.append(f"feature kind(s) change: {', '.join(kinds)}")
        if not (missing or added) and list(before) != list(after):
            changes.append("the feature columns' order changes (a consumer passing rows as lists must reorder them)")
    return changes


def schema_rule(card: dict[str, Any], champion: dict[str, Any] | None, *, model_uri: str) -> str | None:
    """The schema-change rule: why the model is refused (SchemaChangedError) when its label set or feature schema
    differs from the champion's, else None. Such a model is never promoted automatically, whatever its score."""
    changes = schema_changes(champion, card_schema(card))
    if not changes or champion is None:
        return None
    return (
        f"model {model_uri} is refused: its schema differs from the champion {champion.get('identity')}'s: "
        f"{'; '.join(changes)}. A consumer of this model's champion would break, so it is never promoted "
        "automatically; nothing was published and the champion is unchanged. Train it as another model "
        "(--model NEW_NAME, with its own champion), or rerun with on_schema_change accept, which publishes it "
        "without promoting it, and make it the champion by hand (pipeline promote), which lists these changes"
    )


def evaluate(
    card: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    model_uri: str,
    min_cv_accuracy: float | None,
    max_regression: float | None,
    min_lift_over_baseline: float | None = None,
    accept_schema_change: bool = False,
) -> dict[str, Any]:
    """``{"score", "score_name", "cv_accuracy", "threshold", "min_cv_accuracy", "max_regression",
    "min_lift_over_baseline", "baseline", "champion_*", "passed", "reason"}``."""
    score_name, found = card_score(card)
    score = found if found is not None else 0.0
    words = score_words(score_name)
    champion_name, champion_value = score_name, None
    same_labels, other = False, "another label set"
    if champion is not None:
        champion_name, champion_value = manifest_score(champion)
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
    refused = None if accept_schema_change else schema_rule(card, champion, model_uri=model_uri)
    if refused is not None:
        passed, reason = False, refused
    return {
        "score": score,
        "score_name": score_name,
        "cv_accuracy": score if score_name == "cv_accuracy" else None,
        "threshold": threshold,
        "min_cv_accuracy": min_cv_accuracy,
        "max_regression": max_regression,
        "min_lift_over_baseline": min_lift_over_baseline,
        "baseline": section(card, "score").get("baseline"),
        "champion_identity": champion.get("identity") if champion else None,
        "champion_cv_accuracy": champion_value if champion and manifest_score(champion)[0] == "cv_accuracy" else None,
        "champion_score": champion_value,
        "champion_score_name": champion_name if champion else None,
        "passed": passed,
        "reason": reason,
        "schema_changed": refused is not None,
        "error": "SchemaChangedError" if refused is not None else None,
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
