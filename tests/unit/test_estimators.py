"""mlpipe.estimators: the generated constraints match the installed scikit-learn, and the checks agree with it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.utils._param_validation import (
    Hidden,
    InvalidParameterError,
    _Booleans,
    _VerboseHelper,
    make_constraint,
    validate_parameter_constraints,
)

from mlpipe import estimators
from mlpipe.estimators import (
    ESTIMATORS,
    NON_SIGNIFICANT,
    SCIKIT_LEARN_VERSION,
    check_estimator,
    default_notes,
    effective_hyperparameters,
    has_predict_proba,
    non_default_hyperparameters,
    scikit_learn_minor,
    significant_hyperparameters,
    validate_hyperparameters,
)
from mlpipe.exceptions import InvalidHyperparametersError, InvalidRequestError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "layers" / "core" / "python" / "mlpipe" / "estimator_constraints.json"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_estimator_constraints", ROOT / "tools" / "generate_estimator_constraints.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sklearn_class(name: str) -> Any:
    module, _, cls = ESTIMATORS[name].class_path.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def generated(name: str) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(SHIPPED.read_text())["estimators"][name]
    return entry


# --- (a) the shipped file is what the installed scikit-learn gives --------------------------------
def test_shipped_constraints_match_the_installed_scikit_learn(generator: ModuleType) -> None:
    # If this fails after an upgrade: run .venv/bin/python tools/generate_estimator_constraints.py
    # and read the diff (a new option, a changed default, a deprecation) before committing it.
    assert SHIPPED.read_text(encoding="utf-8") == generator.render(generator.build())
    assert sklearn.__version__ == SCIKIT_LEARN_VERSION
    assert scikit_learn_minor() == ".".join(sklearn.__version__.split(".")[:2])


def test_the_generator_check_mode_reports_a_stale_file(
    generator: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "estimator_constraints.json"
    stale.write_text(SHIPPED.read_text().replace('"C": 1.0', '"C": 2.0', 1))
    monkeypatch.setattr(generator, "OUTPUT", stale)
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    assert generator.main(["--check"]) == 1
    err = capsys.readouterr().err
    removed = [line for line in err.splitlines() if line.startswith("-") and '"C"' in line]
    added = [line for line in err.splitlines() if line.startswith("+") and '"C"' in line]
    assert [line.split()[-1] for line in removed + added] == ["2.0,", "1.0,"]
    assert "is stale: run" in err
    assert stale.read_text() != SHIPPED.read_text()  # --check never writes
    assert generator.main([]) == 0
    assert stale.read_text() == SHIPPED.read_text()


def test_every_registered_estimator_has_its_class_in_the_file() -> None:
    document = json.loads(SHIPPED.read_text())
    assert list(document["estimators"]) == sorted(ESTIMATORS)
    for name, spec in ESTIMATORS.items():
        assert document["estimators"][name]["class"] == spec.class_path


@pytest.mark.parametrize("name", ESTIMATORS)
def test_predict_proba_in_the_registry_matches_scikit_learn(name: str) -> None:
    cls = sklearn_class(name)
    kind = ESTIMATORS[name].predict_proba
    assert hasattr(cls(), "predict_proba") == (kind == "always")
    if kind == "probability":
        assert hasattr(cls(probability=True), "predict_proba")
    assert has_predict_proba(name, {}) == (kind == "always")


# --- (b) scikit-learn's defaults pass ---------------------------------------------------------------
@pytest.mark.parametrize("name", ESTIMATORS)
def test_scikit_learn_defaults_pass_the_validator(name: str) -> None:
    defaults = sklearn_class(name)().get_params(deep=False)
    assert validate_hyperparameters(name, defaults) == defaults
    assert effective_hyperparameters(name, defaults) == dict(sorted(defaults.items()))


def test_deprecated_parameters_of_1_9_are_sentinels_with_notes() -> None:
    # What 1.9.1 has: SVC(probability='deprecated') (deprecated in 1.9) and
    # LogisticRegression(penalty='deprecated') (deprecated in 1.8); both only satisfy a Hidden
    # StrOptions({'deprecated'}). Other defaults are plain JSON values.
    notes = {name: generated(name)["default_notes"] for name in ESTIMATORS}
    if scikit_learn_minor() == "1.9":
        assert {name: sorted(n) for name, n in notes.items() if n} == {
            "logistic_regression": ["penalty"],
            "svc": ["probability"],
        }
    for name, params in notes.items():
        for param, note in params.items():
            assert note["kind"] in {"sentinel", "not_json"}
            assert param in default_notes(name)[param]
    # The sentinel itself is accepted (it is how "unset" is passed on), but not as another value
    with pytest.raises(InvalidHyperparametersError, match='probability must be true or false, got "auto"'):
        validate_hyperparameters("svc", {"probability": "auto"})
    assert validate_hyperparameters("svc", {"probability": "deprecated"}) == {"probability": "deprecated"}


# --- (c) the validator agrees with scikit-learn's ----------------------------------------------------
def _strings() -> list[str]:
    found = {"", "deprecated", "auto", "none", "null", "True"}
    for name in ESTIMATORS:
        for constraints in generated(name)["constraints"].values():
            for constraint in constraints if isinstance(constraints, list) else []:
                found.update(o for o in constraint.get("options", []) if isinstance(o, str))
    return sorted(found)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    # Bounded so that numpy's comparisons inside scikit-learn never see an int beyond int64.
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([-1, 0, 1, 2, 3, 255, 256, 2**32 - 1, 2**32]),
    # Python's json reads NaN and Infinity, so they can reach the validator.
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, -1.0, 1e-7, 1e300, math.inf, -math.inf, math.nan]),
    st.sampled_from(_strings()),
    st.text(max_size=6),
)
JSON_VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=3),
)
PARAMETERS = [(name, param) for name in ESTIMATORS for param in generated(name)["constraints"]]


def finite(value: Any) -> bool:
    """Whether no number in ``value`` (a JSON value) is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(finite(v) for v in value)
    return True


def sklearn_accepts(name: str, param: str, value: Any) -> bool:
    """scikit-learn's verdict, less the cases where this pipeline is stricter on purpose.

    Only JSON values are drawn: callables, sparse matrices, RandomState and objects with methods
    cannot come from an execution's input, so what scikit-learn takes of those is not compared.
    Left out of scikit-learn's constraints before asking it:
    - Hidden ones: internal to scikit-learn. The one hidden value a user can meet, a sentinel
      default, is accepted by both (checked by the caller).
    - for true/false, every numeric constraint: bool is an int in Python (scikit-learn takes
      ``degree=True``), but in JSON true is not a number. Only "boolean", "verbose" and the bool
      type take a boolean here.
    - for a JSON object, "array-like" and "cv_object": scikit-learn's duck typing takes anything
      with a ``len`` (a mapping too), which its fit then refuses; here they mean a list.
    - any value holding NaN or infinity: JSON has no such number, so the model card could not
      record it; refused here whatever scikit-learn says.
    """
    if not finite(value):
        return False
    raw = sklearn_class(name)._parameter_constraints[param]
    kept = [c for c in raw if not isinstance(c, Hidden)]
    if isinstance(value, bool):
        kept = [c for c in kept if c is bool or isinstance(make_constraint(c), _Booleans | _VerboseHelper)]
    if isinstance(value, dict):
        kept = [c for c in kept if c not in ("array-like", "cv_object")]
    if not kept:
        return False
    try:
        validate_parameter_constraints({param: kept}, {param: value}, caller_name=name)
    except InvalidParameterError:
        return False
    return True


def ours_accepts(name: str, param: str, value: Any) -> bool:
    try:
        validate_hyperparameters(name, {param: value})
    except InvalidHyperparametersError:
        return False
    return True


@pytest.mark.parametrize(("name", "param"), PARAMETERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES)
def test_the_validator_accepts_exactly_what_scikit_learn_accepts(name: str, param: str, value: Any) -> None:
    defaults = generated(name)
    if param in defaults["default_notes"] and value == defaults["defaults"][param] and not isinstance(value, bool):
        # a sentinel default: scikit-learn takes it through its hidden constraint, and so do we
        validate_parameter_constraints(sklearn_class(name)._parameter_constraints, {param: value}, caller_name=name)
        assert ours_accepts(name, param, value)
        return
    assert ours_accepts(name, param, value) == sklearn_accepts(name, param, value)


@pytest.mark.parametrize(
    ("name", "param", "value", "accepted"),
    [
        ("svc", "degree", True, False),  # scikit-learn would take it (bool is an int)
        ("svc", "C", math.inf, False),  # (0, inf] in scikit-learn, but JSON has no Infinity for the card
        ("svc", "tol", math.inf, False),  # (0, inf)
        ("svc", "C", math.nan, False),
        ("svc", "cache_size", 100, True),  # an int is a valid float
        ("random_forest", "max_features", 1, True),  # Interval(Integral, 1, None)
        ("random_forest", "max_features", 1.0, True),  # Interval(RealNotInt, 0, 1, "right")
        ("hist_gradient_boosting", "max_features", 1, False),  # RealNotInt only
        ("svc", "random_state", 2**32 - 1, True),
        ("svc", "random_state", 2**32, False),
        ("random_forest", "monotonic_cst", [1, 0, -1, 0], True),
        ("random_forest", "monotonic_cst", {"a": 1}, False),  # not a list, whatever duck typing says
        ("random_forest", "class_weight", [{"0": 1}], True),
        ("svc", "kernel", "precomputed", True),  # scikit-learn's word; its fit refuses non-square data
        ("svc", "verbose", True, True),
        ("svc", "verbose", 2, True),
    ],
)
def test_edge_values(name: str, param: str, value: Any, accepted: bool) -> None:
    assert ours_accepts(name, param, value) is accepted


# --- (d) messages ---------------------------------------------------------------------------------
def test_an_unknown_estimator_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_estimator("xgboost")
    assert not isinstance(caught.value, InvalidHyperparametersError)
    message = str(caught.value)
    assert '"xgboost"' in message
    for name in ESTIMATORS:
        assert name in message
    with pytest.raises(InvalidRequestError, match="estimator must be one of"):
        validate_hyperparameters("xgboost", {})
    assert check_estimator("random_forest") == "random_forest"


def test_an_unknown_parameter_lists_the_accepted_ones() -> None:
    with pytest.raises(InvalidHyperparametersError) as caught:
        validate_hyperparameters("svc", {"c": 1.0})
    message = str(caught.value)
    assert message.startswith("invalid hyperparameters for svc: 'c' is not a parameter of svc")
    for param in ("C", "kernel", "gamma", "random_state"):
        assert param in message


def test_a_parameter_of_another_estimator_names_it() -> None:
    with pytest.raises(InvalidHyperparametersError, match="'n_estimators' is a parameter of random_forest, not of svc"):
        validate_hyperparameters("svc", {"n_estimators": 10})
    with pytest.raises(InvalidHyperparametersError) as caught:
        validate_hyperparameters("random_forest", {"max_iter": 10})
    owners = "svc, linear_svc, logistic_regression, hist_gradient_boosting"
    assert f"'max_iter' is a parameter of {owners}, not of random_forest" in str(caught.value)


def test_a_wrong_value_names_the_parameter_what_it_must_be_and_the_value() -> None:
    with pytest.raises(InvalidHyperparametersError) as caught:
        validate_hyperparameters(
            "svc", {"C": -1, "kernel": "cubic", "gamma": "big", "shrinking": 1}, where="HYPERPARAMETERS"
        )
    message = str(caught.value)
    assert message.startswith("invalid HYPERPARAMETERS for svc: ")
    assert "C must be a float in (0, inf], got -1" in message
    assert 'kernel must be one of "linear", "poly", "precomputed", "rbf", "sigmoid", got "cubic"' in message
    assert 'gamma must be one of "auto", "scale" or a float in [0, inf), got "big"' in message
    assert "shrinking must be true or false, got 1" in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidHyperparametersError) as caught:
        validate_hyperparameters("random_forest", {"n_estimators": 0, "max_depth": 1.5, "criterion": "mse"})
    message = str(caught.value)
    assert "n_estimators must be an integer in [1, inf), got 0" in message
    assert "max_depth must be an integer in [1, inf) or null, got 1.5" in message
    assert 'criterion must be one of "entropy", "gini", "log_loss", got "mse"' in message


def test_a_parameter_only_code_can_set_says_so() -> None:
    with pytest.raises(InvalidHyperparametersError, match='loss must be "log_loss", got 3'):
        validate_hyperparameters("hist_gradient_boosting", {"loss": 3})


@pytest.mark.parametrize("params", [[1, 2], "C=1", None, 3])
def test_hyperparameters_that_are_not_an_object_are_refused(params: Any) -> None:
    with pytest.raises(InvalidHyperparametersError, match="hyperparameters must be a JSON object of svc parameters"):
        validate_hyperparameters("svc", params)


def test_valid_hyperparameters_come_back_as_a_copy() -> None:
    params = {"C": 2, "kernel": "linear", "class_weight": {"setosa": 2.0}}
    checked = validate_hyperparameters("svc", params)
    assert checked == params
    assert checked is not params


# --- (e) effective, significant and non-default hyperparameters ---------------------------------
@pytest.mark.parametrize("name", ESTIMATORS)
def test_random_state_defaults_to_zero_when_the_estimator_has_one(name: str) -> None:
    effective = effective_hyperparameters(name, {})
    defaults = sklearn_class(name)().get_params(deep=False)
    assert set(effective) == set(defaults)
    assert effective["random_state"] == 0  # all five take one
    assert non_default_hyperparameters(name, {}) == {"random_state": 0}


def test_effective_hyperparameters_merge_the_given_ones_over_the_defaults() -> None:
    effective = effective_hyperparameters("svc", {"C": 2.5, "random_state": 7})
    assert (effective["C"], effective["random_state"], effective["kernel"]) == (2.5, 7, "rbf")
    assert effective_hyperparameters("svc", {"random_state": None})["random_state"] is None
    # checking the effective ones again changes nothing (training passes them on)
    assert effective_hyperparameters("svc", effective) == effective
    with pytest.raises(InvalidHyperparametersError):
        effective_hyperparameters("svc", {"C": 0})


def test_significant_hyperparameters_leave_out_those_that_do_not_change_the_model() -> None:
    assert {"n_jobs", "verbose", "cache_size"} == NON_SIGNIFICANT
    significant = significant_hyperparameters("random_forest", {"n_jobs": 4, "verbose": 1, "n_estimators": 10})
    assert not {"n_jobs", "verbose"} & set(significant)
    assert (significant["n_estimators"], significant["random_state"]) == (10, 0)
    assert significant == significant_hyperparameters("random_forest", {"n_jobs": 1, "n_estimators": 10})
    assert "cache_size" not in significant_hyperparameters("svc", {"cache_size": 500})


def test_non_default_hyperparameters_are_those_that_differ_from_scikit_learn() -> None:
    assert non_default_hyperparameters("svc", {"C": 1, "kernel": "linear"}) == {"kernel": "linear", "random_state": 0}
    assert non_default_hyperparameters("svc", {"break_ties": False}) == {"random_state": 0}
    # 0 and false are equal in Python, not in JSON
    assert non_default_hyperparameters("linear_svc", {"verbose": False}) == {"random_state": 0, "verbose": False}


def test_has_predict_proba_follows_the_probability_flag_of_svc() -> None:
    assert has_predict_proba("svc", {"probability": True})
    assert not has_predict_proba("svc", {"probability": False})
    assert not has_predict_proba("linear_svc", {})
    assert has_predict_proba("random_forest", {})


# --- (f) the plan step's cold start ---------------------------------------------------------------
def test_the_module_imports_without_scikit_learn_numpy_or_pandas() -> None:
    code = (
        "import sys\n"
        "import mlpipe.estimators as e\n"
        "e.validate_hyperparameters('svc', {'C': 2}); e.effective_hyperparameters('random_forest', {})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'sklearn', 'numpy', 'pandas', 'scipy'})\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-B", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "layers" / "core" / "python"), "PATH": ""},
    )
    assert result.stdout.strip() == "[]"


def test_the_module_exposes_its_data_file_beside_it() -> None:
    assert Path(estimators.__file__).with_name("estimator_constraints.json") == SHIPPED
