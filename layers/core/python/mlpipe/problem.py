"""The problem type: classification or regression, requested by the run or decided from the label (standard library).

A run's ``task`` is ``auto`` (the default), ``classification`` or ``regression``. Under ``auto`` the
label is a regression target when every value is a number and it does not look like class codes:

    every label a number AND (more than REGRESSION_MIN_DISTINCT (20) distinct values,
                              OR some non-integer value AND more than REGRESSION_MIN_DISTINCT_FRACTIONAL (10))

else it is classification. A non-integer value is one that is not whole (2.5) or is written as a
decimal (60323.0, as a column of floats is written; the validator never reads such a label as an
integer class code either). So integers 0-9 (or 1-20) are classes, ``yes``/``no`` are classes, and
prices, durations, statsmodels' longley employment (16 values written as 60323.0) or a
disease-progression score are targets. The download's streaming check
(``mlpipe.dataset``) gathers what the rule needs in ``LabelStats`` (``LabelTally`` per row, memory
bounded by ``DISTINCT_CAP``); training decides again from the recorded stats (``decide_task``), so
a run that asks for another task than the download's is decided by its own request. The model card
records the decision (``TaskDecision.to_dict``).

``target_transform: log`` (regression only) fits the regressor to ``log1p(label)`` and returns
``expm1`` of its predictions (scikit-learn's ``TransformedTargetRegressor``): every label must be > 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mlpipe.exceptions import InvalidDatasetError, InvalidRequestError

AUTO = "auto"
CLASSIFICATION = "classification"
REGRESSION = "regression"
TASK_CHOICES = (AUTO, CLASSIFICATION, REGRESSION)
TARGET_TRANSFORMS = ("none", "log")
DEFAULT_TARGET_TRANSFORM = "none"
REGRESSION_MIN_DISTINCT = 20
REGRESSION_MIN_DISTINCT_FRACTIONAL = 10
INTEGER_TEXT = re.compile(r"[+-]?\d+", re.ASCII)
# Distinct label values the check counts (with their rows) before it stops: a numeric label beyond
# it is a regression target under auto, and memory stays flat in the file's size.
DISTINCT_CAP = 10_000
RULE = (
    f"regression when every label is a number and there are more than {REGRESSION_MIN_DISTINCT} distinct values, "
    f"or some value is not an integer (or is written as a decimal: 1.0) and there are more than "
    f"{REGRESSION_MIN_DISTINCT_FRACTIONAL}; "
    "else classification"
)
# A numeric label with this many distinct values or more, some class too small for the folds: perhaps a target.
RARE_CLASSES_HINT_DISTINCT = 6


def check_task(value: Any, name: str = "task") -> str:
    """``value`` if it is one of ``TASK_CHOICES``, else InvalidRequestError naming them."""
    if value not in TASK_CHOICES:
        raise InvalidRequestError(f"{name} must be one of {', '.join(TASK_CHOICES)}, got {value!r}")
    return str(value)


def check_target_transform(value: Any, task: str, name: str = "target_transform") -> str:
    """``value`` (None: ``none``) if it is one of ``TARGET_TRANSFORMS`` and fits ``task``, else InvalidRequestError."""
    value = DEFAULT_TARGET_TRANSFORM if value is None else value
    if value not in TARGET_TRANSFORMS:
        raise InvalidRequestError(f"{name} must be one of {', '.join(TARGET_TRANSFORMS)}, got {value!r}")
    if value != DEFAULT_TARGET_TRANSFORM and task == CLASSIFICATION:
        raise InvalidRequestError(
            f"{name} {value!r} transforms a regression target; the run's task is classification: "
            "set task regression (or auto), or leave target_transform out"
        )
    return str(value)


@dataclass
class LabelTally:
    """What the label column showed so far, row by row (kept by the streaming check; cheap per row)."""

    numbers: int = 0
    non_integer: bool = False
    minimum: float = math.inf
    maximum: float = -math.inf
    first_non_number: tuple[int, str] | None = None
    first_non_finite: tuple[int, str] | None = None
    first_non_positive: tuple[int, str] | None = None

    def add(self, line_no: int, label: str) -> None:
        """Count one label (as written, stripped)."""
        try:
            value = float(label)
        except ValueError:
            if self.first_non_number is None:
                self.first_non_number = (line_no, label)
            return
        self.numbers += 1
        if not math.isfinite(value):
            if self.first_non_finite is None:
                self.first_non_finite = (line_no, label)
            return
        if value <= 0 and self.first_non_positive is None:
            self.first_non_positive = (line_no, label)
        if not self.non_integer and (not value.is_integer() or not INTEGER_TEXT.fullmatch(label)):
            self.non_integer = True  # 2.5, or 60323.0: written as a decimal, as a float column is (never a class code)
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def stats(self, rows: int, distinct: int, capped: bool) -> LabelStats:
        """The label's stats after ``rows`` rows with ``distinct`` distinct values (more when ``capped``)."""
        finite = math.isfinite(self.minimum)
        return LabelStats(
            numeric=rows > 0 and self.numbers == rows,
            distinct=distinct,
            distinct_capped=capped,
            non_integer=self.non_integer,
            minimum=self.minimum if finite else None,
            maximum=self.maximum if finite else None,
            first_non_number=list(self.first_non_number) if self.first_non_number else None,
            first_non_finite=list(self.first_non_finite) if self.first_non_finite else None,
            first_non_positive=list(self.first_non_positive) if self.first_non_positive else None,
        )


@dataclass(frozen=True)
class LabelStats:
    """The label column's summary: what the task rule and the regression checks need."""

    numeric: bool  # every label is a number (non-finite ones included: they are a regression target's error)
    distinct: int  # distinct values as written ("1" and "1.0" apart); at least this many when distinct_capped
    distinct_capped: bool = False
    non_integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    first_non_number: list[Any] | None = None  # [line, value]
    first_non_finite: list[Any] | None = None
    first_non_positive: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the download's lineage, the model card)."""
        return {
            "numeric": self.numeric,
            "distinct": self.distinct,
            "distinct_capped": self.distinct_capped,
            "non_integer": self.non_integer,
            "min": self.minimum,
            "max": self.maximum,
            "first_non_number": self.first_non_number,
            "first_non_finite": self.first_non_finite,
            "first_non_positive": self.first_non_positive,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelStats:
        """The stats ``to_dict`` gave; KeyError, TypeError or ValueError when ``data`` is not such a record."""
        return cls(
            numeric=bool(data["numeric"]),
            distinct=int(data["distinct"]),
            distinct_capped=bool(data["distinct_capped"]),
            non_integer=bool(data["non_integer"]),
            minimum=None if data["min"] is None else float(data["min"]),
            maximum=None if data["max"] is None else float(data["max"]),
            first_non_number=data.get("first_non_number"),
            first_non_finite=data.get("first_non_finite"),
            first_non_positive=data.get("first_non_positive"),
        )


@dataclass(frozen=True)
class TaskDecision:
    """The task a run trains for, and why."""

    requested: str
    task: str
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The model card's ``task_decision``."""
        return {
            "requested": self.requested,
            "task": self.task,
            "rule": RULE,
            "inputs": self.inputs,
            "reason": self.reason,
        }


def decide_task(requested: str, label: LabelStats) -> TaskDecision:
    """The task for ``requested`` (``auto`` decided by ``RULE`` on ``label``)."""
    inputs = {"numeric": label.numeric, "distinct": label.distinct, "non_integer": label.non_integer}
    if label.distinct_capped:
        inputs["distinct_capped"] = True
    if requested != AUTO:
        return TaskDecision(requested, requested, f"task {requested} was requested", inputs)
    shown = f"more than {label.distinct}" if label.distinct_capped else str(label.distinct)
    if not label.numeric:
        where = label.first_non_number or label.first_non_finite
        detail = f" ({where[1]!r} at line {where[0]})" if where else ""
        return TaskDecision(AUTO, CLASSIFICATION, f"auto: some labels are not numbers{detail}", inputs)
    if label.distinct > REGRESSION_MIN_DISTINCT or label.distinct_capped:
        return TaskDecision(
            AUTO, REGRESSION, f"auto: every label is a number, {shown} distinct (> {REGRESSION_MIN_DISTINCT})", inputs
        )
    if label.non_integer and label.distinct > REGRESSION_MIN_DISTINCT_FRACTIONAL:
        return TaskDecision(
            AUTO,
            REGRESSION,
            f"auto: every label is a number, some not integers, {shown} distinct "
            f"(> {REGRESSION_MIN_DISTINCT_FRACTIONAL})",
            inputs,
        )
    return TaskDecision(
        AUTO,
        CLASSIFICATION,
        f"auto: every label is a number but only {shown} distinct"
        + (" (class codes)" if not label.non_integer else f" (at most {REGRESSION_MIN_DISTINCT_FRACTIONAL})"),
        inputs,
    )


def regression_hint(decision: TaskDecision, label: LabelStats) -> str:
    """What a classification error adds when ``auto`` chose classification for a numeric label with many values."""
    if decision.requested == AUTO and label.numeric and label.distinct >= RARE_CLASSES_HINT_DISTINCT:
        return (
            f"; the label is numeric with {label.distinct} distinct values and auto chose classification ({RULE}): "
            "if it is a quantity to predict, run with --task regression (execution input task: regression)"
        )
    return ""


def check_regression_label(
    uri: str, label: LabelStats, rows: int, min_rows: int, target_transform: str = DEFAULT_TARGET_TRANSFORM
) -> None:
    """InvalidDatasetError when the label cannot be a regression target (a non-number or non-finite value, naming
    its line; one value only; fewer rows than folds; a value <= 0 under the log transform)."""
    if label.first_non_number is not None:
        line, value = label.first_non_number
        raise InvalidDatasetError(
            f"invalid dataset at {uri}, line {line}: the label {value!r} is not a number; task regression needs a "
            "numeric label in every row: fix the value, or set task classification"
        )
    if label.first_non_finite is not None:
        line, value = label.first_non_finite
        raise InvalidDatasetError(
            f"invalid dataset at {uri}, line {line}: the label {value!r} is not a finite number; a regression target "
            "needs a finite number in every row: fix or drop the row"
        )
    if label.distinct <= 1:
        raise InvalidDatasetError(
            f"invalid dataset at {uri}: the label is constant ({label.minimum!r} in all {rows} rows); a regression "
            "target must vary: check the label column"
        )
    if rows < 2 * min_rows:  # R² needs two held-out rows in each fold
        raise InvalidDatasetError(
            f"invalid dataset at {uri}: {rows} rows, fewer than two for each of the {min_rows} folds of "
            "cross-validation (R² needs two held-out rows); supply more rows, or lower cv_folds"
        )
    if target_transform == "log" and label.first_non_positive is not None:
        line, value = label.first_non_positive
        raise InvalidDatasetError(
            f"invalid dataset at {uri}, line {line}: the label {value!r} is not positive; target_transform log "
            "models log1p of a positive target: leave target_transform out, or fix the label"
        )
