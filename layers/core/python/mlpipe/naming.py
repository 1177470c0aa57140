"""Model names: each named model has its own published location, ``<publish root>/<model>/``.

Under it are the model's published models (``<run date>/published-<id>/``), its champion
(``champion.json``) and the champion's history, exactly as a publish root held them before models
had names. The intermediates (datasets and trained models under the artifact root) carry no name:
their identity is what they are made from, so two models trained alike on the same data share them,
and two models that differ in anything that changes a model differ in identity anyway. Only the
published location, where the champion is, belongs to one name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mlpipe.exceptions import InvalidModelNameError, UnknownModelError
from mlpipe.storage.uris import join_uri

if TYPE_CHECKING:
    from mlpipe.storage import Store

DEFAULT_MODEL = "iris"
MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Names a publish root used before models had names (a run date, the champion's history): never a model's.
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The champion's manifest and history beside a model's published runs (mlpipe.champion).
CHAMPION_FILE = "champion.json"
HISTORY_DIR = "champion-history"
RESERVED = frozenset({HISTORY_DIR})


def is_model_name(value: Any) -> bool:
    """Whether ``value`` is a model name (what ``check_model_name`` accepts)."""
    return (
        isinstance(value, str)
        and bool(MODEL_NAME_RE.match(value))
        and not _DATE_RE.match(value)
        and (value not in RESERVED)
    )


def check_model_name(value: Any, where: str = "model") -> str:
    """``value`` as a model name (``[a-z0-9][a-z0-9-]{0,62}``, not a date), or InvalidModelNameError saying why."""
    if not isinstance(value, str) or not MODEL_NAME_RE.match(value):
        raise InvalidModelNameError(
            f"{where} {value!r} is not a model name: use 1 to 63 lowercase letters, digits and '-', starting with a "
            "letter or digit (for example iris or penguins-2)"
        )
    if _DATE_RE.match(value) or value in RESERVED:
        raise InvalidModelNameError(
            f"{where} {value!r} is not a model name: a publish root uses it for its own folders (a run date, the "
            "champion's history); choose another name"
        )
    return value


def model_location(publish_root: str, model: str) -> str:
    """The published location of ``model`` under ``publish_root``: ``<publish root>/<model>``."""
    return join_uri(publish_root, check_model_name(model))


def models_under(publish_root: str, *, store: Store) -> list[str]:
    """The names of the models that published something under ``publish_root``, sorted."""
    found = set()
    for item in store.list(publish_root):
        first, _, rest = item.relative.partition("/")
        second = rest.split("/", 1)[0]
        if is_model_name(first) and (second in {CHAMPION_FILE, HISTORY_DIR} or _DATE_RE.match(second)):
            found.add(first)
    return sorted(found)


def choose_model(publish_root: str, model: str | None, *, default: str = DEFAULT_MODEL, store: Store) -> str:
    """The model a command is about: ``model`` when given (checked, and it must have published something there);
    else the only model under the root, or ``default`` when there is none yet.

    UnknownModelError naming the models there are when ``model`` has none, or when several are there and no
    name was given.
    """
    present = models_under(publish_root, store=store)
    if model is not None:
        check_model_name(model)
        if present and model not in present:
            raise UnknownModelError(
                f"there is no model {model!r} under {publish_root}: the models there are {', '.join(present)}; "
                "name one of them with --model (pipeline status lists what each published)"
            )
        return model
    if len(present) > 1:
        raise UnknownModelError(
            f"{publish_root} holds several models ({', '.join(present)}): name one with --model (or model=...)"
        )
    return present[0] if present else default


def legacy_champion_uri(location: str) -> str:
    """Where a publish root kept its one champion before models had names: ``champion.json`` beside the model's
    location (``<publish root>/champion.json`` for ``<publish root>/<model>``)."""
    return join_uri(location.rstrip("/").rsplit("/", 1)[0], CHAMPION_FILE)
