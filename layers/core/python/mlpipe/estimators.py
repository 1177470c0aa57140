"""The estimators a run may choose, and their hyperparameters checked without importing scikit-learn.

The plan step checks an execution's ``hyperparameters`` before anything is downloaded, and it must
start fast, so this module is standard library only. What it checks is not written by hand: it is
scikit-learn's own ``_parameter_constraints`` (and the defaults of ``get_params()``), serialised by
``tools/generate_estimator_constraints.py`` into ``estimator_constraints.json`` beside this file
(shipped in the core layer), and ``tests/unit/test_estimators.py`` fails when that file differs
from what the installed scikit-learn gives. scikit-learn still has the last word when it fits
(combinations such as ``penalty='l1'`` with ``solver='lbfgs'`` are only checked there).

The JSON file::

    {"scikit_learn_version": "1.9.1",
     "estimators": {"svc": {"class": "sklearn.svm.SVC",
                            "defaults": {"C": 1.0, ...},
                            "default_notes": {"probability": {"kind": "sentinel", ...}},
                            "constraints": {"C": [{"interval": "real", ...}], ...}}, ...}}

``constraints`` maps each parameter to scikit-learn's list of alternatives (a value is valid when
it satisfies one), in scikit-learn's order, or to the string ``"no_validation"``. Each alternative
is an object whose key says its kind:

- ``{"interval": "integer" | "real" | "real_not_int", "left": n | null, "right": n | null,
  "closed": "left" | "right" | "both" | "neither"}``: ``Interval``; a null bound is -inf/+inf (and a
  closed null bound admits the infinity, as in scikit-learn). ``real`` admits integers,
  ``real_not_int`` does not (``1.0`` passes, ``1`` does not), ``integer`` admits no float.
- ``{"options": [...], "deprecated": [...]}``: ``StrOptions`` (``deprecated`` only when some are);
  ``Options`` of another type adds ``"type": name``.
- ``{"none": true}``: ``None`` (JSON null).
- ``{"type": name}``: an instance of a class: ``bool``, ``int``, ``float``, ``str``, ``dict``,
  ``list``, ``tuple``, ``numbers.Integral``, ``numbers.Real``, or the dotted path of any other class
  (which no JSON value is).
- ``{"named": name}``: scikit-learn's string constraints ``boolean``, ``verbose``, ``random_state``,
  ``array-like``, ``cv_object``, ``nan``, ``sparse matrix`` and ``callable`` (the ``callable``
  built-in used as a constraint).
- ``{"missing_values": {"numeric_only": bool}}``: ``MissingValues``.
- ``{"has_methods": [names]}``: ``HasMethods``.

``Hidden(...)`` alternatives are internal to scikit-learn (deprecation sentinels, private
classes) and are left out. ``callable``, ``sparse matrix``, ``has_methods`` and classes other than
the JSON ones are kept, so the file says what scikit-learn takes, but no JSON value matches them.

A JSON value is checked as JSON means it: ``true`` is not the number 1 (scikit-learn, where
``bool`` is an ``int``, would take it), an integer is a valid float, ``array-like`` is a list (not
an object, which scikit-learn's duck typing would take and its fit would then refuse) and ``dict``
is a JSON object.

``effective_hyperparameters`` adds one default of the pipeline's own: ``random_state`` is 0 (not
scikit-learn's None) for every estimator that has one, unless the run sets it. Training must be
deterministic: two concurrent executions of a run write one model only if they produce the same
bytes from the same data and parameters.

``default_notes`` explains a default that is not a plain JSON value of the parameter:
``"sentinel"`` (the default satisfies only a hidden constraint, e.g. ``probability='deprecated'``:
scikit-learn's marker for a deprecated parameter left unset; kept in ``defaults`` as is and
accepted as the value of that parameter only, so that passing effective hyperparameters on, or
checking them again, changes nothing) or ``"not_json"`` (nan, a class, an object:
``null`` in ``defaults`` and left out of the effective hyperparameters, so scikit-learn applies its
own default).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from mlpipe.exceptions import InvalidHyperparametersError, InvalidRequestError
from mlpipe.problem import CLASSIFICATION, REGRESSION
from mlpipe.scaling import AUTO

CONSTRAINTS_FILE = "estimator_constraints.json"
GENERATOR = "tools/generate_estimator_constraints.py"

# Parameters that change how a model is fitted (threads, logging, a kernel cache), not what is fitted.
NON_SIGNIFICANT: frozenset[str] = frozenset({"n_jobs", "verbose", "cache_size"})

# The pipeline's own default for estimators that take a random_state: the same data and parameters
# must give the same model bytes, so that concurrent executions agree on one model.
PIPELINE_RANDOM_STATE = 0


@dataclass(frozen=True)
class EstimatorSpec:
    """One supported estimator: its scikit-learn class and what the pipeline around it needs."""

    name: str
    class_path: str
    scale: bool  # numeric columns are standardised first (margin and gradient based models)
    dense: bool  # the estimator refuses sparse input, so one-hot encoding must be dense
    # "always", "probability" (only when fitted with probability=true: SVC, deprecated in
    # scikit-learn 1.9) or "never".
    predict_proba: Literal["always", "probability", "never"]
    # The classifier whose fit-time and memory model (mlpipe.scaling) a regressor shares; a classifier's own name.
    family: str = ""
    scale_target: bool = False  # a regressor whose target is standardised too (its epsilon is in the target's units)

    @property
    def kind(self) -> str:
        """The name mlpipe.scaling knows this estimator's cost by."""
        return self.family or self.name


ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in (
        EstimatorSpec("svc", "sklearn.svm.SVC", scale=True, dense=False, predict_proba="probability"),
        EstimatorSpec("linear_svc", "sklearn.svm.LinearSVC", scale=True, dense=False, predict_proba="never"),
        EstimatorSpec(
            "logistic_regression",
            "sklearn.linear_model.LogisticRegression",
            scale=True,
            dense=False,
            predict_proba="always",
        ),
        EstimatorSpec(
            "random_forest", "sklearn.ensemble.RandomForestClassifier", scale=False, dense=False, predict_proba="always"
        ),
        EstimatorSpec(
            "hist_gradient_boosting",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            scale=False,
            dense=True,
            predict_proba="always",
        ),
    )
}
DEFAULT_ESTIMATOR = "svc"

# The regressors (task regression), by the name a run gives; mlpipe.scaling costs each as its ``family``.
REGRESSORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in (
        EstimatorSpec(
            "svr", "sklearn.svm.SVR", scale=True, dense=False, predict_proba="never", family="svc", scale_target=True
        ),
        EstimatorSpec(
            "linear_svr",
            "sklearn.svm.LinearSVR",
            scale=True,
            dense=False,
            predict_proba="never",
            family="linear_svc",
            scale_target=True,
        ),
        EstimatorSpec(
            "ridge",
            "sklearn.linear_model.Ridge",
            scale=True,
            dense=False,
            predict_proba="never",
            family="logistic_regression",
        ),
        EstimatorSpec(
            "random_forest", "sklearn.ensemble.RandomForestRegressor", scale=False, dense=False, predict_proba="never"
        ),
        EstimatorSpec(
            "hist_gradient_boosting",
            "sklearn.ensemble.HistGradientBoostingRegressor",
            scale=False,
            dense=True,
            predict_proba="never",
        ),
    )
}
# Under task regression a classifier's name means the regressor of its family (the default svc is SVR there).
REGRESSOR_FOR = {"svc": "svr", "linear_svc": "linear_svr", "logistic_regression": "ridge"}
SECTIONS = {CLASSIFICATION: "estimators", REGRESSION: "regressors"}


def registry(task: str) -> dict[str, EstimatorSpec]:
    """The estimators of ``task`` (classification or regression) by name."""
    return REGRESSORS if task == REGRESSION else ESTIMATORS


def resolve_name(estimator: str, task: str) -> str:
    """The name of the estimator ``estimator`` means under the decided ``task`` (``auto`` stays ``auto``).

    Raises InvalidRequestError for a regressor's name under classification.
    """
    if estimator == AUTO:
        return AUTO
    if task == REGRESSION:
        return REGRESSOR_FOR.get(estimator, estimator)
    if estimator not in ESTIMATORS:
        raise InvalidRequestError(
            f"estimator {estimator} is a regressor, and the task is classification: set task regression, or name "
            f"a classifier ({', '.join(ESTIMATORS)})"
        )
    return estimator


def spec_of(estimator: str, task: str = CLASSIFICATION) -> EstimatorSpec:
    """The registry entry of ``estimator`` under the decided ``task``."""
    return registry(task)[resolve_name(estimator, task)]


def _load() -> dict[str, Any]:
    try:
        text = resources.files("mlpipe").joinpath(CONSTRAINTS_FILE).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"mlpipe/{CONSTRAINTS_FILE} is missing or not JSON ({exc}): run {GENERATOR}") from exc
    if not (
        isinstance(data, dict)
        and isinstance(data.get("scikit_learn_version"), str)
        and isinstance(data.get("estimators"), dict)
    ):
        raise RuntimeError(f"mlpipe/{CONSTRAINTS_FILE} lacks scikit_learn_version or estimators: run {GENERATOR}")
    data.setdefault("regressors", {})
    return data


_DATA = _load()
SCIKIT_LEARN_VERSION: str = _DATA["scikit_learn_version"]


def scikit_learn_minor() -> str:
    """The ``major.minor`` of the scikit-learn the constraints were generated from, e.g. ``"1.9"``."""
    return ".".join(SCIKIT_LEARN_VERSION.split(".")[:2])


@dataclass(frozen=True)
class _Generated:
    defaults: dict[str, Any]
    default_notes: dict[str, dict[str, str]]
    constraints: dict[str, Any]


@cache
def _generated(estimator: str, task: str = CLASSIFICATION) -> _Generated:
    # Read per estimator, on first use, so that a file missing one (a registry grown before the
    # file was regenerated) still lets the generator import this module.
    spec = spec_of(estimator, task)
    entry = _DATA[SECTIONS[task]].get(spec.name)
    if not isinstance(entry, dict) or entry.get("class") != spec.class_path:
        raise RuntimeError(
            f"mlpipe/{CONSTRAINTS_FILE} has no constraints for {spec.name} ({spec.class_path}): run {GENERATOR}"
        )
    return _Generated(entry["defaults"], entry.get("default_notes", {}), entry["constraints"])


def check_estimator(name: Any, task: str = CLASSIFICATION) -> str:
    """Return ``name`` if it is an estimator of ``task`` (``auto``: of either) or ``auto``; raise InvalidRequestError
    listing them. Under regression a classifier's name means its family's regressor (``REGRESSOR_FOR``)."""
    names = [*ESTIMATORS] if task == CLASSIFICATION else [*ESTIMATORS, *(n for n in REGRESSORS if n not in ESTIMATORS)]
    if not isinstance(name, str) or (name not in names and name != AUTO):
        regressors = f"; regressors (task regression): {', '.join(REGRESSORS)}" if task == CLASSIFICATION else ""
        raise InvalidRequestError(
            f"estimator must be one of {', '.join(names)} or {AUTO} (chosen by the dataset's size; "
            f"default {DEFAULT_ESTIMATOR}), got {_show(name)}{regressors}"
        )
    return name


def default_notes(estimator: str, task: str = CLASSIFICATION) -> dict[str, str]:
    """Why some of scikit-learn's defaults for ``estimator`` are not plain JSON values (parameter -> note)."""
    generated = _generated(check_estimator(estimator, task), task)
    return {name: note["note"] for name, note in generated.default_notes.items()}


# --- checking one value ---------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _in_interval(value: Any, constraint: dict[str, Any]) -> bool:
    kind = constraint["interval"]
    if kind == "integer" and not _is_int(value):
        return False
    if kind == "real" and not _is_real(value):
        return False
    if kind == "real_not_int" and not isinstance(value, float):
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    closed = constraint["closed"]
    left = -math.inf if constraint["left"] is None else constraint["left"]
    right = math.inf if constraint["right"] is None else constraint["right"]
    above_left = value >= left if closed in ("left", "both") else value > left
    below_right = value <= right if closed in ("right", "both") else value < right
    return bool(above_left and below_right)


# Classes named by {"type": ...} that a JSON value can be; any other class never matches.
_JSON_TYPES: dict[str, Any] = {
    "bool": lambda v: isinstance(v, bool),
    "int": _is_int,
    "numbers.Integral": _is_int,
    "float": lambda v: isinstance(v, float),
    "numbers.Real": _is_real,
    "str": lambda v: isinstance(v, str),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "tuple": lambda v: isinstance(v, tuple),
}


# scikit-learn's string constraints; "sparse matrix" and "callable" are never a JSON value.
_NAMED: dict[str, Any] = {
    "boolean": lambda v: isinstance(v, bool),
    "verbose": lambda v: isinstance(v, bool) or (_is_int(v) and v >= 0),
    "random_state": lambda v: v is None or (_is_int(v) and 0 <= v <= 2**32 - 1),
    "array-like": lambda v: isinstance(v, list | tuple),
    "cv_object": lambda v: v is None or isinstance(v, list | tuple) or (_is_int(v) and v >= 2),
    "nan": lambda v: isinstance(v, float) and math.isnan(v),
}


def _satisfies(value: Any, constraint: dict[str, Any]) -> bool:  # noqa: PLR0911  # a branch per kind
    if "interval" in constraint:
        return _in_interval(value, constraint)
    if "options" in constraint:
        check = _JSON_TYPES.get(constraint.get("type", "str"))
        return check is not None and check(value) and value in constraint["options"]
    if "none" in constraint:
        return value is None
    if "type" in constraint:
        check = _JSON_TYPES.get(constraint["type"])
        return check is not None and bool(check(value))
    if "named" in constraint:
        check = _NAMED.get(constraint["named"])
        return check is not None and bool(check(value))
    if "missing_values" in constraint:
        numeric_only = constraint["missing_values"]["numeric_only"]
        return _is_real(value) or (not numeric_only and (value is None or isinstance(value, str)))
    return False  # has_methods, and any kind this module does not know


def _expects(value: Any, constraints: list[dict[str, Any]]) -> str | None:
    """None if ``value`` satisfies one of ``constraints``, else what it must be, in words."""
    if any(_satisfies(value, c) for c in constraints):
        return None
    words = [w for c in constraints if (w := _describe(c)) is not None]
    if not constraints:
        return "left unset (scikit-learn takes only internal values)"
    if not words:
        return (
            "set in code (scikit-learn takes only " + " or ".join(_describe_unreachable(c) for c in constraints) + ")"
        )
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _bound(value: Any, default: str) -> str:
    return default if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _describe(constraint: dict[str, Any]) -> str | None:  # noqa: PLR0911  # a branch per kind
    """The constraint in words, or None when no JSON value satisfies it."""
    if "interval" in constraint:
        closed = constraint["closed"]
        low = "[" if closed in ("left", "both") else "("
        high = "]" if closed in ("right", "both") else ")"
        what = {"integer": "an integer", "real": "a float", "real_not_int": "a float with a decimal point"}
        span = f"{low}{_bound(constraint['left'], '-inf')}, {_bound(constraint['right'], 'inf')}{high}"
        return f"{what[constraint['interval']]} in {span}"
    if "options" in constraint:
        if constraint.get("type", "str") not in _JSON_TYPES:
            return None
        deprecated = set(constraint.get("deprecated", ()))
        shown = [_show(o) + (" (deprecated)" if o in deprecated else "") for o in constraint["options"]]
        return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)
    if "none" in constraint:
        return "null"
    if "type" in constraint:
        return {
            "bool": "true or false",
            "int": "an integer",
            "numbers.Integral": "an integer",
            "float": "a float",
            "numbers.Real": "a number",
            "str": "a string",
            "dict": "an object",
            "list": "a list",
            "tuple": "a list",
        }.get(constraint["type"])
    if "named" in constraint:
        return {
            "boolean": "true or false",
            "verbose": "true, false or an integer >= 0",
            "random_state": "null or an integer in [0, 4294967295]",
            "array-like": "a list",
            "cv_object": "an integer >= 2, a list of (train, test) index lists or null",
            "nan": "NaN",
        }.get(constraint["named"])
    if "missing_values" in constraint:
        return "a number" if constraint["missing_values"]["numeric_only"] else "a number, a string or null"
    return None


def _describe_unreachable(constraint: dict[str, Any]) -> str:
    if "has_methods" in constraint:
        return "an object with " + ", ".join(constraint["has_methods"])
    if "type" in constraint:
        return f"a {constraint['type']}"
    if "named" in constraint:
        return f"a {constraint['named']}"
    return json.dumps(constraint, sort_keys=True, allow_nan=False)


def _show(value: Any) -> str:
    """A value as the user wrote it in JSON (true, null, "text"), or its repr when it is not JSON."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


# --- the hyperparameters of a run -----------------------------------------------------------------
def validate_hyperparameters(
    estimator: str, params: Any, *, where: str = "hyperparameters", task: str = CLASSIFICATION
) -> dict[str, Any]:
    """Check the names, types and ranges of ``params`` for ``estimator`` under ``task``; return a copy.

    Raises InvalidRequestError for an unknown estimator and InvalidHyperparametersError naming
    ``where`` and every problem: an unknown parameter (with the estimator's parameters, or the
    other estimators that have it), a number that is not finite (NaN, infinity, anywhere in the
    value), or a value with what it must be. Under task ``auto`` (not decided before the data is
    read) they must be valid for the classifier or the regressor of that name; training checks
    them again for the task it decides.
    """
    check_estimator(estimator, task)
    if task not in SECTIONS and estimator != AUTO:
        return _valid_for_either(estimator, params, where)
    if estimator == AUTO:
        if params not in ({}, None):
            raise InvalidHyperparametersError(
                f"{where} must be empty with estimator {AUTO}, got {_show(params)}: {AUTO} chooses the estimator "
                "from the dataset's row count, so no parameter is known to apply; name the estimator "
                "(svc or hist_gradient_boosting) to set its hyperparameters"
            )
        return {}
    if not isinstance(params, dict):
        raise InvalidHyperparametersError(
            f"{where} must be a JSON object of {estimator} parameters, got {_show(params)}"
        )
    spec = spec_of(estimator, task)
    generated = _generated(estimator, task)
    constraints = generated.constraints
    problems = []
    for name, value in params.items():
        if (bad := _non_finite(value)) is not None:
            problems.append(
                f"{name}: {bad} is not a finite number; give a finite one (JSON has no NaN or Infinity, so the "
                "model card could not record it)"
            )
            continue
        if _is_sentinel_default(generated, name, value):
            continue  # scikit-learn's own marker for "unset", as effective_hyperparameters passes it on
        if name not in constraints:
            others = registry(task)
            owners = [o for o in others if o != spec.name and name in _generated(o, task).constraints]
            if owners:
                problems.append(f"{name!r} is a parameter of {', '.join(owners)}, not of {spec.name}")
            else:
                problems.append(
                    f"{name!r} is not a parameter of {spec.name} (its parameters: {', '.join(sorted(constraints))})"
                )
        elif constraints[name] != "no_validation" and (expected := _expects(value, constraints[name])) is not None:
            problems.append(f"{name} must be {expected}, got {_show(value)}")
    if problems:
        raise InvalidHyperparametersError(f"invalid {where} for {spec.name}: " + "; ".join(problems))
    return dict(params)


def _valid_for_either(estimator: str, params: Any, where: str) -> dict[str, Any]:
    """``params`` checked for the classifier of the name, else its regressor (task auto); the first error if neither."""
    failures: list[InvalidHyperparametersError] = []
    for task in (t for t in SECTIONS if t == REGRESSION or estimator in ESTIMATORS):
        try:
            return validate_hyperparameters(estimator, params, where=where, task=task)
        except InvalidHyperparametersError as exc:
            failures.append(exc)
    raise failures[0]


def _non_finite(value: Any) -> str | None:
    """How ``value`` (or a number inside it) shows a number that is not finite, else None.

    NaN and infinity (``json.loads`` reads ``NaN``, ``Infinity`` and an overflowing ``1e400``
    as them), and an integer too large for any float: none can be written to a JSON card.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    if _is_int(value):
        try:
            float(value)
        except OverflowError:
            return f"an integer of {len(str(abs(value)))} digits"
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    return next((found for item in items if (found := _non_finite(item)) is not None), None)


def _is_sentinel_default(generated: _Generated, name: str, value: Any) -> bool:
    note = generated.default_notes.get(name)
    return note is not None and note.get("kind") == "sentinel" and _same(value, generated.defaults.get(name))


def effective_hyperparameters(estimator: str, params: Any, task: str = CLASSIFICATION) -> dict[str, Any]:
    """Every parameter ``estimator`` is built with: scikit-learn's defaults, then the validated ``params``.

    One default is the pipeline's, not scikit-learn's: ``random_state`` is 0 when the estimator has
    one and ``params`` does not set it, so that the same data and parameters always give the same
    model bytes (concurrent executions of a run agree on one model). Setting ``random_state`` to
    null explicitly gives scikit-learn's fresh randomness back. A default that JSON cannot hold
    (``default_notes`` kind ``not_json``) is left out, so scikit-learn applies it itself.
    """
    params = validate_hyperparameters(estimator, params, task=task)
    if estimator == AUTO:
        return {}  # scikit-learn's defaults of whichever estimator auto chooses
    generated = _generated(estimator, task)
    unrepresentable = {n for n, note in generated.default_notes.items() if note.get("kind") == "not_json"}
    effective = {n: v for n, v in generated.defaults.items() if n not in unrepresentable}
    if "random_state" in generated.constraints and "random_state" not in params:
        effective["random_state"] = PIPELINE_RANDOM_STATE
    effective.update(params)
    return dict(sorted(effective.items()))


def significant_hyperparameters(estimator: str, params: Any, task: str = CLASSIFICATION) -> dict[str, Any]:
    """The effective hyperparameters that decide the fitted model: all but ``NON_SIGNIFICANT`` ones."""
    return {n: v for n, v in effective_hyperparameters(estimator, params, task).items() if n not in NON_SIGNIFICANT}


def non_default_hyperparameters(estimator: str, params: Any, task: str = CLASSIFICATION) -> dict[str, Any]:
    """The effective hyperparameters whose value differs from scikit-learn's default (random_state 0 among them)."""
    if estimator == AUTO:
        return {}
    defaults = _generated(estimator, task).defaults
    return {
        name: value
        for name, value in effective_hyperparameters(estimator, params, task).items()
        if name not in defaults or not _same(value, defaults[name])
    }


def _same(a: Any, b: Any) -> bool:
    # true == 1 in Python, but they are different JSON values (and different parameters to scikit-learn).
    return isinstance(a, bool) == isinstance(b, bool) and bool(a == b)


def has_predict_proba(estimator: str, params: Any, task: str = CLASSIFICATION) -> bool:
    """Whether ``estimator`` fitted with ``params`` offers ``predict_proba`` (never a regressor)."""
    spec = spec_of(check_estimator(estimator, task), task)
    if spec.predict_proba == "probability":
        return effective_hyperparameters(estimator, params, task).get("probability") is True
    return spec.predict_proba == "always"
