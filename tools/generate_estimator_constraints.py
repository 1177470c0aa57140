"""Write layers/core/python/mlpipe/estimator_constraints.json from the installed scikit-learn.

    .venv/bin/python tools/generate_estimator_constraints.py          # (re)write the file
    .venv/bin/python tools/generate_estimator_constraints.py --check  # exit 1 if it is stale

For each estimator of ``mlpipe.estimators.ESTIMATORS`` (and, under ``regressors``, of ``REGRESSORS``): the
class's ``_parameter_constraints``,
serialised as the module docstring of ``mlpipe.estimators`` describes, and ``get_params()`` of a
default instance. The output is deterministic (sorted keys, option sets sorted, indent 2, a final
newline), so a diff shows exactly what an upgrade of scikit-learn changed. An unknown kind of
constraint or default stops the generator: it must be handled here (and in the runtime) first.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import math
import numbers
import sys
from pathlib import Path
from typing import Any

import sklearn
from sklearn.utils import _param_validation as pv

# This checkout's mlpipe, whichever one the venv has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "core" / "python"))
from mlpipe.estimators import ESTIMATORS, REGRESSORS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "layers" / "core" / "python"
OUTPUT = PACKAGE / "mlpipe" / "estimator_constraints.json"
NAMED = ("boolean", "verbose", "random_state", "array-like", "cv_object", "nan", "sparse matrix")


def _number(value: Any) -> int | float | None:
    """A bound as JSON: ints stay ints, an infinite bound is null (scikit-learn treats None as +-inf)."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    return None if math.isinf(value) else value


def _type_name(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _option(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    raise ValueError(f"an option {value!r} that JSON cannot hold")


def serialise_constraint(constraint: Any) -> dict[str, Any] | None:  # noqa: PLR0911  # a branch per kind
    """One of scikit-learn's constraints as a JSON object; None for a Hidden one (internal, left out)."""
    if isinstance(constraint, pv.Hidden):
        return None
    if isinstance(constraint, pv.Interval):
        kinds = {numbers.Integral: "integer", numbers.Real: "real", pv.RealNotInt: "real_not_int"}
        return {
            "interval": kinds[constraint.type],
            "left": _number(constraint.left),
            "right": _number(constraint.right),
            "closed": constraint.closed,
        }
    if isinstance(constraint, pv.Options):  # StrOptions included
        key = lambda o: (type(o).__name__, o)  # noqa: E731
        encoded: dict[str, Any] = {"options": sorted((_option(o) for o in constraint.options), key=key)}
        if constraint.deprecated:
            encoded["deprecated"] = sorted((_option(o) for o in constraint.deprecated), key=key)
        if not isinstance(constraint, pv.StrOptions):
            encoded["type"] = _type_name(constraint.type)
        return encoded
    if isinstance(constraint, pv.MissingValues):
        return {"missing_values": {"numeric_only": bool(constraint.numeric_only)}}
    if isinstance(constraint, pv.HasMethods):
        return {"has_methods": list(constraint.methods)}
    if constraint is None:
        return {"none": True}
    if constraint is callable:
        return {"named": "callable"}
    if isinstance(constraint, str) and constraint in NAMED:
        return {"named": constraint}
    if isinstance(constraint, float) and math.isnan(constraint):  # np.nan, scikit-learn's spelling of "nan"
        return {"named": "nan"}
    if isinstance(constraint, type):
        return {"type": _type_name(constraint)}
    raise ValueError(f"unknown kind of constraint {constraint!r}: teach the generator and mlpipe.estimators")


def _default(value: Any) -> tuple[Any, str | None]:  # noqa: PLR0911  # a branch per kind
    """A default as JSON, and why not when JSON cannot hold it (it is then null)."""
    if value is None or isinstance(value, bool | str):
        return value, None
    if isinstance(value, numbers.Integral):
        return int(value), None
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isfinite(value):
            return value, None
        return None, f"{value!r} is not a JSON number"
    if isinstance(value, type):
        return None, f"the class {_type_name(value)}"
    if callable(value):
        return None, f"the callable {getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, list | tuple | dict):
        try:
            return json.loads(json.dumps(value, allow_nan=False)), None
        except (TypeError, ValueError):
            pass
    return None, f"the object {value!r}"


def describe_estimator(class_path: str) -> dict[str, Any]:
    """The ``class``, ``defaults``, ``default_notes`` and ``constraints`` of one scikit-learn class."""
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    declared = cls._parameter_constraints
    params = cls().get_params(deep=False)
    constraints: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    notes: dict[str, dict[str, str]] = {}
    for param, value in sorted(params.items()):
        raw = declared.get(param, "no_validation")  # scikit-learn does not check undeclared ones either
        if raw == "no_validation":
            constraints[param] = "no_validation"
        else:
            constraints[param] = [c for c in map(serialise_constraint, raw) if c is not None]
        encoded, why_not = _default(value)
        defaults[param] = encoded
        if why_not is not None:
            notes[param] = {
                "kind": "not_json",
                "value": repr(value),
                "note": f"scikit-learn's default is {why_not}: not settable from JSON; scikit-learn applies it",
            }
        elif raw != "no_validation":
            made = [pv.make_constraint(c) for c in raw]
            if not any(c.is_satisfied_by(value) for c in made if not c.hidden):
                if not any(c.is_satisfied_by(value) for c in made):
                    raise ValueError(f"{class_path}: the default {param}={value!r} satisfies none of its constraints")
                why = f"{param} is deprecated" if value == "deprecated" else f"{param} is left to scikit-learn"
                notes[param] = {
                    "kind": "sentinel",
                    "value": repr(value),
                    "note": (
                        f"{why}: its default {value!r} is scikit-learn's internal marker for 'not set' "
                        "(a hidden constraint); leave it out of the hyperparameters"
                    ),
                }
    return {"class": class_path, "constraints": constraints, "default_notes": notes, "defaults": defaults}


def build() -> dict[str, Any]:
    """The whole document, from the installed scikit-learn and the registry."""
    return {
        "scikit_learn_version": sklearn.__version__,
        "estimators": {name: describe_estimator(spec.class_path) for name, spec in ESTIMATORS.items()},
        "regressors": {name: describe_estimator(spec.class_path) for name, spec in REGRESSORS.items()},
    }


def render(document: dict[str, Any]) -> str:
    """The file's exact text."""
    return json.dumps(document, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the file, or with ``--check`` compare it and exit 1 with a diff when it differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    wanted = render(build())
    shipped = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
    relative = OUTPUT.relative_to(ROOT)
    if args.check:
        if shipped == wanted:
            print(f"{relative} is up to date")
            return 0
        diff = difflib.unified_diff(
            shipped.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=f"{relative} (shipped)",
            tofile=f"{relative} (from the installed scikit-learn)",
        )
        sys.stderr.write("".join(diff))
        sys.stderr.write(f"{relative} is stale: run .venv/bin/python tools/generate_estimator_constraints.py\n")
        return 1
    if shipped != wanted:
        OUTPUT.write_text(wanted, encoding="utf-8")
    print(f"{relative}: {len(wanted.encode())} bytes, {'unchanged' if shipped == wanted else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
