"""Several models in one deployment: a configuration document per model, ``<model configs>/<name>.json``.

A document holds what an execution's input may say about a model (its source, dataset description,
estimator, hyperparameters, folds, size limit and gate) and its ``schedule``::

    {"source_url": "https://example.org/penguins.csv", "dataset": {"label_column": "species"},
     "estimator": "random_forest", "hyperparameters": {"n_estimators": 200}, "min_cv_accuracy": 0.8,
     "schedule": {"expression": "cron(0 4 * * ? *)", "timezone": "UTC", "enabled": true}}

The plan reads the document of the model its input names (``with_model_config``): the document is the
base, the input's own fields win (a run date, a force, a hyperparameter tried once). It is checked
with the plan's own checks (``validate_config`` resolves a run from it, as the plan does), so
``pipeline models put`` refuses offline what the plan would refuse. In the stack the documents are in
the models bucket under ``model-configs/`` (the plan's role may read only that prefix there), and
each document's schedule is an EventBridge Scheduler schedule of the stack's schedule group, named
after the model, whose input names only the model.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from mlpipe.config import INPUT_FIELDS, Settings, check_object, resolve_run
from mlpipe.exceptions import InvalidModelConfigError, InvalidRequestError, UnknownModelError
from mlpipe.naming import check_model_name, is_model_name
from mlpipe.storage import Store, join_uri

CONFIG_SUFFIX = ".json"
# What only one execution says, never a model: when, why, what to redo, and where everything goes.
RUN_ONLY = frozenset(
    {
        "model",
        "run_date",
        "scheduled_time",
        "trigger",
        "uploaded_at",
        "force",
        "artifact_root",
        "publish_uri",
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID",
    }
)
MODEL_FIELDS = INPUT_FIELDS - RUN_ONLY
SCHEDULE_FIELDS = frozenset({"expression", "timezone", "enabled"})
# Placeholder roots for checking a document offline: the roots are the deployment's, not the model's.
_CHECK_ROOTS = {"artifact_root": "s3://check/artifacts", "publish_uri": "s3://check/published"}


def config_uri(configs_uri: str, model: str) -> str:
    """Where model ``model``'s document is: ``<configs_uri>/<model>.json``."""
    return join_uri(configs_uri, check_model_name(model) + CONFIG_SUFFIX)


def check_schedule(value: Any, where: str) -> dict[str, Any] | None:
    """A document's ``schedule`` (``{"expression", "timezone", "enabled"}``), checked; None when there is none."""
    if value is None:
        return None
    check_object(value, SCHEDULE_FIELDS, f"{where}'s schedule")
    expression = value.get("expression")
    if not isinstance(expression, str) or not (
        (expression.startswith(("cron(", "rate(", "at("))) and expression.endswith(")")
    ):
        raise InvalidRequestError(
            f"{where}'s schedule.expression must be an EventBridge Scheduler expression, cron(...), rate(...) or "
            f"at(...), got {expression!r}"
        )
    timezone = value.get("timezone", "UTC")
    Settings(timezone=timezone if isinstance(timezone, str) else "").tz()  # InvalidRequestError naming it
    if not isinstance(value.get("enabled", True), bool):
        raise InvalidRequestError(f"{where}'s schedule.enabled must be true or false, got {value.get('enabled')!r}")
    return {"expression": expression, "timezone": timezone, "enabled": value.get("enabled", True)}


def validate_config(model: str, document: Any, settings: Settings, *, where: str | None = None) -> dict[str, Any]:
    """``document`` as model ``model``'s configuration, checked as the plan checks a run of it (no storage touched);
    InvalidModelConfigError naming ``where`` (the document's URI) and what is wrong."""
    check_model_name(model)
    where = where or f"model {model}'s configuration"
    try:
        check_object(document, MODEL_FIELDS | {"schedule"}, where)
        schedule = check_schedule(document.get("schedule"), where)
        fields = {name: value for name, value in document.items() if name != "schedule"}
        run_input = fields | {"model": model, "run_date": dt.date.today().isoformat()} | _CHECK_ROOTS
        resolve_run(run_input, settings, store=Store(allow_local=False))
    except InvalidRequestError as exc:
        raise InvalidModelConfigError(
            f"{where} is not a valid model configuration: {exc}; nothing was changed (docs/models.md)"
        ) from exc
    return fields | ({"schedule": schedule} if schedule else {})


def read_config(configs_uri: str, model: str, settings: Settings, *, store: Store) -> dict[str, Any] | None:
    """Model ``model``'s document under ``configs_uri``, validated; None when there is none."""
    target = store.target(config_uri(configs_uri, model))
    data, _ = target.read_versioned()
    if data is None:
        return None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise InvalidModelConfigError(f"{target.uri} is not JSON ({exc}); fix it with pipeline models put") from exc
    return validate_config(model, document, settings, where=target.uri)


def with_model_config(execution_input: Any, settings: Settings, *, store: Store) -> Any:
    """The execution input over its model's document (the input's fields win), for the plan.

    Without a document: the deployment's own model (``ModelName``) and any input that says more than which
    model and when (an ad hoc run) are taken as they are; an input naming only another model is
    UnknownModelError, before anything is written.
    """
    if not isinstance(execution_input, dict) or execution_input.get("model") is None or not settings.model_configs_uri:
        return execution_input
    model = check_model_name(execution_input["model"])
    document = read_config(settings.model_configs_uri, model, settings, store=store)
    if document is None:
        if model == settings.model_name or set(execution_input) - RUN_ONLY:
            return execution_input
        raise UnknownModelError(
            f"there is no model {model!r}: no configuration document at "
            f"{store.target(config_uri(settings.model_configs_uri, model)).uri}, and it is not the deployment's "
            f"model ({settings.model_name}); add it with `pipeline models put {model} --config FILE`, or give its "
            "source and settings in the input; nothing was run"
        )
    return {name: value for name, value in document.items() if name != "schedule"} | execution_input


def list_configs(configs_uri: str, *, store: Store) -> list[str]:
    """The names of the models that have a document under ``configs_uri``, sorted."""
    names = (
        item.relative.removesuffix(CONFIG_SUFFIX)
        for item in store.list(configs_uri)
        if item.relative.endswith(CONFIG_SUFFIX)
    )
    return sorted(name for name in names if "/" not in name and is_model_name(name))
