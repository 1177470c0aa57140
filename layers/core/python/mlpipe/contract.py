"""The data contract: the data a model accepts, made from its training data, kept beside the champion.

Three parts, all pure Python (the download imports this; no pandas):

- **The profile.** ``DataWatch`` looks at each valid row while the download streams (a ``RowWatch``
  of ``mlpipe.dataset``) and keeps a bounded sketch: per feature column the exact minimum and
  maximum of its numbers, the exact counts of its values up to ``CATEGORY_CAP`` distinct ones (a
  column with more is marked ``capped`` and gets no frequencies), and one reservoir sample of
  ``RESERVOIR_ROWS`` rows (Vitter's algorithm L, seeded: the same file gives the same sample) from
  which the deciles are read. Memory is flat in the file's size. The profile is written beside the
  dataset (``PROFILE_FILE``); training copies it into the model's card (``data_profile``).
- **The contract.** When a model becomes the champion (promotion, ``pipeline promote``, rollback),
  ``contract_document`` makes the contract from its card: columns, kinds, ranges, deciles,
  category frequencies, the label set (or the label range for a regression). It is written to
  ``<publish location>/contract.json``; the champion's manifest records its sha256
  (``contract_reference``), and ``contract_for`` reads it back only when it belongs to the champion.
- **The checks.** ``DataWatch`` with a contract compares the data with it while streaming: a
  missing or extra feature column, another label column, the feature columns in another order (at
  the header: a consumer passing rows as lists depends on the model's column order, which is the
  file's), a column whose kind changed, a label outside the label set, a class of the label set that
  no row has (at the end of the file: the model would no longer predict it). These are the
  differences the gate's ``mlpipe.gate.schema_changes`` refuses after training, found before anything
  is written. With ``on_schema_change: fail`` (the default) that is a SchemaChangedError
  naming each difference, raised inside the download's write, so nothing is written. With
  ``accept`` the differences are recorded (the card's ``schema_change``) and block automatic
  promotion (``promotion_block``). Drift against the contract is measured at the end of the file
  (``drift``): the population stability index of each numeric feature over the contract's decile
  bins, the L-infinity distance of each categorical feature's frequencies and its share of unseen
  categories. The gate's ``max_drift`` rule is ``mlpipe.gate.drift_rule``.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpipe.dataset import DatasetStats
from mlpipe.description import INTEGER, ColumnLayout, shown_names
from mlpipe.exceptions import (
    IntegrityError,
    InvalidRequestError,
    SchemaChangedError,
    StorageError,
    TargetExistsError,
)
from mlpipe.storage import Store, Target, join_uri

LOG = logging.getLogger(__name__)
PROFILE_FILE = "profile.json"  # beside the dataset: its profile, and its drift and schema changes against the contract
CONTRACT_FILE = "contract.json"  # beside the champion
CONTRACT_VERSION = 1
RESERVOIR_ROWS = 2000  # rows sampled for the quantiles: a decile's standard error is at most 1.1 percentage points
CATEGORY_CAP = 1000  # distinct values counted exactly per column; beyond it the column's frequencies are not kept
QUANTILES = 10  # deciles
PSI_FLOOR = 1e-4  # a bin's share below this counts as this in the PSI (an empty bin would make it infinite)
ON_SCHEMA_CHANGE = ("fail", "accept")


def check_on_schema_change(value: Any, name: str = "on_schema_change") -> str:
    """``value`` as a schema-change policy (``fail`` or ``accept``), or InvalidRequestError naming ``name``."""
    if value not in ON_SCHEMA_CHANGE:
        raise InvalidRequestError(f"{name} must be one of {', '.join(ON_SCHEMA_CHANGE)}, got {value!r}")
    return str(value)


# --- the sketch ----------------------------------------------------------------------------------


@dataclass
class _Column:
    """One feature column's sketch: its numbers' range, and its values' counts until there are too many."""

    low: float = math.inf
    high: float = -math.inf
    counts: dict[str, int] | None = field(default_factory=dict)
    # False after its first non-number: such a column is categorical (or refused as a typo), so its range is
    # never used, and parsing its text as numbers (an exception each) is the sketch's largest cost.
    numbers: bool = True


@dataclass
class _Reservoir:
    """A uniform sample of ``size`` rows of a stream of unknown length (Vitter's algorithm L), seeded."""

    size: int = RESERVOIR_ROWS
    rows: list[list[str]] = field(default_factory=list)
    seen: int = 0
    rand: random.Random = field(default_factory=lambda: random.Random(0))
    _weight: float = 0.0
    _next: int = 0

    def wants(self) -> bool:
        """Count a row; True when it goes into the sample (then ``put`` it)."""
        self.seen += 1
        return len(self.rows) < self.size or self.seen == self._next

    def put(self, cells: list[str]) -> None:
        if len(self.rows) < self.size:
            self.rows.append(cells)
            if len(self.rows) == self.size:
                self._weight = math.exp(math.log(self._uniform()) / self.size)
                self._skip()
            return
        self.rows[self.rand.randrange(self.size)] = cells
        self._weight *= math.exp(math.log(self._uniform()) / self.size)
        self._skip()

    def _uniform(self) -> float:
        return 1.0 - self.rand.random()  # in (0, 1]: its logarithm is finite

    def _skip(self) -> None:
        step = math.floor(math.log(self._uniform()) / math.log1p(-self._weight)) if self._weight < 1 else 0
        self._next = self.seen + step + 1


@dataclass
class DataWatch:
    """The rows' sketch (the dataset's profile) and, given a contract, the check against it (a ``RowWatch``).

    ``uri`` names the data in messages; ``contract`` is the champion's (``contract_for``) or None;
    ``policy`` is the run's ``on_schema_change``. After the validation, ``result()`` is the profile
    file's content.
    """

    uri: str
    na_values: tuple[str, ...]
    contract: dict[str, Any] | None = None
    contract_uri: str | None = None
    policy: str = "fail"
    changes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.na = set(self.na_values)
        self.sample = _Reservoir()
        self.columns: dict[int, _Column] = {}
        self.layout: ColumnLayout | None = None
        self.stats: DatasetStats | None = None
        self.allowed: set[str] | None = None
        self.seen_labels: set[str] = set()
        self.unknown_labels: dict[str, int] = {}

    def start(self, layout: ColumnLayout) -> None:
        """Set up the sketch; compare the columns with the contract's (refused at once under ``fail``)."""
        self.layout = layout
        self.columns = {index: _Column() for index in layout.features}
        if self.contract is None:
            return
        label = self.contract["label"]
        if label.get("set") is not None:
            self.allowed = {str(value) for value in label["set"]}
        self.changes.extend(column_changes(self.contract, layout))
        self._decide()

    def row(self, line_no: int, row: list[str]) -> None:
        """Sketch a valid row; a label outside the contract's set is a change (refused at its line under ``fail``)."""
        assert self.layout is not None
        if self.sample.wants():
            self.sample.put([row[index] for index in self.layout.features])
        na = self.na
        for index, column in self.columns.items():  # the hot loop: comparisons, not min() and max()
            value = row[index].strip()
            if value in na:
                continue
            counts = column.counts
            if counts is not None:
                seen = counts.get(value)
                if seen is not None:
                    counts[value] = seen + 1
                elif len(counts) < CATEGORY_CAP:
                    counts[value] = 1
                else:
                    column.counts = None  # one value too many: frequencies are not kept for this column
            if not column.numbers:
                continue
            try:
                number = float(value)
            except ValueError:
                column.numbers = False
                continue
            if number < column.low:  # noqa: PLR1730
                column.low = number
            if number > column.high:  # noqa: PLR1730
                column.high = number
        if self.allowed is not None:
            self._label(line_no, row[self.layout.label].strip())

    def _label(self, line_no: int, label: str) -> None:
        assert self.allowed is not None
        assert self.layout is not None
        if label in self.allowed:
            self.seen_labels.add(label)
            return
        if INTEGER.fullmatch(label) and str(int(label)) in self.allowed:
            self.seen_labels.add(str(int(label)))
            return
        if label not in self.unknown_labels:
            self.changes.append(
                {
                    "change": "unknown label",
                    "column": self.layout.label_name,
                    "value": label[:40],
                    "line": line_no,
                    "detail": f"label {label[:40]!r} at line {line_no} is not in the contract's label set "
                    f"({shown_names(sorted(self.allowed))})",
                }
            )
            self._decide()
        self.unknown_labels[label] = self.unknown_labels.get(label, 0) + 1

    def finish(self, stats: DatasetStats) -> None:
        """The end of the file: compare the columns' kinds and the labels with the contract's; refuse under ``fail``."""
        self.stats = stats
        if self.contract is not None:
            self.changes.extend(kind_changes(self.contract, stats))
            self.changes.extend(lost_classes(self.contract, self.seen_labels if self.allowed is not None else None))
            self._decide()

    def _decide(self) -> None:
        if not self.changes or self.policy == "accept":
            return
        raise SchemaChangedError(schema_message(self.uri, self.changes, self.contract or {}, self.contract_uri))

    def profile(self) -> dict[str, Any]:
        """The dataset's profile: per feature its kind, range, deciles or category frequencies; the label's values."""
        assert self.stats is not None
        assert self.layout is not None
        stats, layout = self.stats, self.layout
        columns: dict[str, Any] = {}
        for position, index in enumerate(layout.features):
            name = layout.names[index]
            kind = stats.kinds[name]
            sketch = self.columns[index]
            entry: dict[str, Any] = {"kind": kind, "missing": stats.missing.get(name, 0)}
            if kind == "numeric":
                values = sorted(v for v in self._sampled(position) if v is not None)
                entry |= {"min": _finite(sketch.low), "max": _finite(sketch.high)} | _deciles(values)
            else:
                entry |= _frequencies(sketch.counts)
            columns[name] = entry
        label: dict[str, Any] = {"column": layout.label_name, "kind": stats.label_kind, "task": stats.task}
        if stats.class_counts and len(stats.class_counts) <= CATEGORY_CAP:
            label["values"] = sorted(stats.class_counts)
        if stats.label is not None and stats.label.numeric:  # the label's range (mlpipe.problem.LabelStats)
            label["min"], label["max"] = stats.label.minimum, stats.label.maximum
        return {
            "rows": stats.rows,
            "sha256": stats.sha256,
            "sample_rows": len(self.sample.rows),
            "columns": columns,
            "label": label,
        }

    def _sampled(self, position: int) -> list[float | None]:
        return [_number(cells[position].strip()) for cells in self.sample.rows]

    def result(self) -> dict[str, Any]:
        """The profile file: the profile, the contract it was checked against, drift, and accepted schema changes."""
        profile = self.profile()
        reference = None
        measured = None
        if self.contract is not None:
            reference = {
                "uri": self.contract_uri,
                "champion": (self.contract.get("champion") or {}).get("identity"),
                "sha256": contract_sha256(self.contract),
            }
            measured = drift(profile, self.contract, self._sample_by_name()) | {"contract": reference}
        change = None
        if self.changes:
            change = {"policy": self.policy, "contract": reference, "changes": self.changes}
            if self.unknown_labels:
                change["unknown_labels"] = dict(sorted(self.unknown_labels.items())[:CATEGORY_CAP])
        return {"profile": profile, "contract": reference, "drift": measured, "schema_change": change}

    def _sample_by_name(self) -> dict[str, list[float | None]]:
        assert self.layout is not None
        return {self.layout.names[index]: self._sampled(p) for p, index in enumerate(self.layout.features)}


def _number(text: str) -> float | None:
    try:
        return _finite(float(text))
    except ValueError:
        return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _deciles(values: list[float]) -> dict[str, Any]:
    """The sorted sample's deciles (nearest rank), and the bins they make with each bin's share of the sample."""
    if not values:
        return {"quantiles": None, "bins": None}
    last = len(values) - 1
    quantiles = [values[round(j * last / QUANTILES)] for j in range(QUANTILES + 1)]
    edges = sorted(set(quantiles[1:-1]))
    return {"quantiles": quantiles, "bins": {"edges": edges, "shares": _shares(values, edges)}}


def _shares(values: list[float], edges: list[float]) -> list[float]:
    """Each bin's share of ``values``: bin i holds edges[i-1] < v <= edges[i] (the first and last are open)."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[bisect.bisect_left(edges, value)] += 1
    total = len(values) or 1
    return [round(count / total, 6) for count in counts]


def _frequencies(counts: dict[str, int] | None) -> dict[str, Any]:
    if counts is None:
        return {"categories": None, "capped": True}
    total = sum(counts.values()) or 1
    return {"categories": {value: round(count / total, 6) for value, count in sorted(counts.items())}, "capped": False}


# --- the checks ----------------------------------------------------------------------------------


def column_changes(contract: dict[str, Any], layout: ColumnLayout) -> list[dict[str, Any]]:
    """The feature columns the data lacks or adds, and another label column, compared with the contract."""
    expected = list(contract["columns"])
    found = layout.feature_names
    changes = [
        {
            "change": "missing column",
            "column": name,
            "detail": f"column {name!r} ({contract['columns'][name]['kind']}) is missing: the champion was "
            "trained with it",
        }
        for name in expected
        if name not in found
    ]
    changes += [
        {"change": "extra column", "column": name, "detail": f"column {name!r} is new: the contract has no such column"}
        for name in found
        if name not in contract["columns"]
    ]
    order = contract.get("feature_order")
    if not changes and isinstance(order, list) and [str(name) for name in order] != list(found):
        changes.append(
            {
                "change": "column order",
                "column": ", ".join(found),
                "detail": f"the feature columns' order changes: the contract's is {', '.join(map(repr, order))}, the "
                f"file's is {', '.join(map(repr, found))} (a consumer passing rows as lists depends on the model's "
                "column order, which is the file's); put the columns back in the contract's order",
            }
        )
    if contract["label"]["column"] != layout.label_name:
        changes.append(
            {
                "change": "label column",
                "column": layout.label_name,
                "detail": f"the label column is {layout.label_name!r}; the contract's is "
                f"{contract['label']['column']!r}",
            }
        )
    return changes


def lost_classes(contract: dict[str, Any], seen: set[str] | None) -> list[dict[str, Any]]:
    """The classes of the contract's label set that no row of the data has (``seen``: the labels found, as the
    label set spells them; None for a regression, which has no label set)."""
    label_set = contract["label"].get("set")
    if seen is None or label_set is None:
        return []
    gone = [str(value) for value in label_set if str(value) not in seen]
    if not gone:
        return []
    return [
        {
            "change": "lost class",
            "column": contract["label"]["column"],
            "values": gone[:CATEGORY_CAP],
            "detail": f"no row has the class(es) {shown_names(gone)} of the contract's label set: a model trained on "
            "this file would no longer predict them",
        }
    ]


def kind_changes(contract: dict[str, Any], stats: DatasetStats) -> list[dict[str, Any]]:
    """The feature columns whose kind (numeric, categorical) is not the contract's."""
    changes = []
    for name, kind in stats.kinds.items():
        before = (contract["columns"].get(name) or {}).get("kind")
        if before is not None and before != kind:
            why = f" ({stats.first_text[name]})" if name in stats.first_text else ""
            changes.append(
                {"change": "kind", "column": name, "detail": f"column {name!r} was {before}, is now {kind}{why}"}
            )
    return changes


def schema_message(uri: str, changes: list[dict[str, Any]], contract: dict[str, Any], contract_uri: str | None) -> str:
    """The SchemaChangedError's text: what differs (each change), where, and what to do."""
    champion = (contract.get("champion") or {}).get("identity", "the champion")
    listed = "; ".join(change["detail"] for change in changes)
    return (
        f"the dataset at {uri} does not match the data contract of the champion {champion} "
        f"({contract_uri or CONTRACT_FILE}): {listed}. Nothing was written. Fix the source; or, if the change is "
        "intended, rerun with on_schema_change=accept (--on-schema-change accept): the model is then trained and "
        "published with the change recorded in its card, but not promoted automatically; `pipeline promote` makes it "
        "the champion, and its data the contract"
    )


def promotion_block(card: dict[str, Any]) -> str | None:
    """Why a model may not be promoted automatically (its data changed the contract's schema), or None."""
    change = card.get("schema_change")
    if not isinstance(change, dict) or not change.get("changes"):
        return None
    listed = "; ".join(str(c.get("detail")) for c in change["changes"])
    champion = (change.get("contract") or {}).get("champion")
    return (
        f"not promoted: its data does not match the contract of the champion {champion} ({listed}; accepted with "
        "on_schema_change=accept); `pipeline promote` makes it the champion by hand, and its data the contract"
    )


# --- drift ---------------------------------------------------------------------------------------


def drift(
    profile: dict[str, Any], contract: dict[str, Any], samples: Mapping[str, list[float | None]]
) -> dict[str, Any]:
    """Per feature in both: numeric ``psi`` over the contract's bins (from ``samples``), categorical ``linf`` and
    ``unseen`` share; ``max`` is the largest ``value`` (a feature's PSI or L-infinity distance)."""
    features: dict[str, Any] = {}
    for name, now in profile["columns"].items():
        before = contract["columns"].get(name)
        if before is None or before.get("kind") != now["kind"]:
            continue
        if now["kind"] == "numeric":
            features[name] = _psi(before, [v for v in samples.get(name, []) if v is not None])
        else:
            features[name] = _linf(before, now)
    measured = [(entry["value"], name) for name, entry in features.items() if entry.get("value") is not None]
    top = max(measured, default=None)
    return {
        "features": features,
        "max": None if top is None else {"feature": top[1], "value": top[0], "measure": features[top[1]]["measure"]},
    }


def _psi(before: dict[str, Any], values: list[float]) -> dict[str, Any]:
    bins = before.get("bins")
    if not bins or not values:
        return {"measure": "psi", "value": None, "note": "not measured: no numbers in the contract or the data"}
    expected = bins["shares"]
    actual = _shares(values, bins["edges"])
    value = sum(
        (max(a, PSI_FLOOR) - max(e, PSI_FLOOR)) * math.log(max(a, PSI_FLOOR) / max(e, PSI_FLOOR))
        for a, e in zip(actual, expected, strict=True)
    )
    return {"measure": "psi", "value": round(value, 6), "expected": expected, "actual": actual}


def _linf(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    old, new = before.get("categories"), now.get("categories")
    if old is None or new is None:
        return {"measure": "linf", "value": None, "note": f"not measured: more than {CATEGORY_CAP} distinct values"}
    keys = set(old) | set(new)
    distance = max((abs(new.get(k, 0.0) - old.get(k, 0.0)) for k in keys), default=0.0)
    unseen = sorted(k for k in new if k not in old)
    return {
        "measure": "linf",
        "value": round(distance, 6),
        "unseen_share": round(sum(new[k] for k in unseen), 6),
        "unseen": unseen[:20],
    }


# --- the contract beside the champion -------------------------------------------------------------


def contract_uri(publish_uri: str) -> str:
    """The contract's URI under a publish location (the run's: it follows the model's own location)."""
    return join_uri(publish_uri, CONTRACT_FILE)


def contract_document(manifest: dict[str, Any], card: dict[str, Any]) -> dict[str, Any] | None:
    """The contract of the champion ``manifest`` from its model's card, or None when the card has no data profile
    (a model trained before profiles were kept)."""
    profile = card.get("data_profile")
    if not isinstance(profile, dict):
        return None
    label_profile = profile.get("label") or {}
    regression = card.get("task") == "regression"
    label = {
        "column": label_profile.get("column") or (card.get("input") or {}).get("label_column"),
        "kind": label_profile.get("kind"),
        "set": None if regression else [str(c) for c in card.get("classes") or []],
        "range": [label_profile.get("min"), label_profile.get("max")] if regression else None,
    }
    contract: dict[str, Any] = {
        "contract_version": CONTRACT_VERSION,
        "champion": {
            "identity": manifest.get("identity"),
            "model_uri": manifest.get("model_uri"),
            "model_sha256": manifest.get("sha256"),
        },
        "dataset": {"uri": (card.get("dataset") or {}).get("uri"), "sha256": card.get("dataset_sha256")},
        "rows": profile.get("rows"),
        "sample_rows": profile.get("sample_rows"),
        "label": label,
        "columns": profile.get("columns") or {},
    }
    order = (card.get("input") or {}).get("columns")
    if isinstance(order, list):
        # The model's column order (a JSON object with sorted keys, as ``columns`` is stored, loses it).
        contract["feature_order"] = [str(name) for name in order]
    return contract


def contract_bytes(contract: dict[str, Any]) -> bytes:
    """The contract's stored form (sorted keys: the same contract always has the same bytes and sha256)."""
    return (json.dumps(contract, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def contract_sha256(contract: dict[str, Any]) -> str:
    """The sha256 of the contract's stored form."""
    return hashlib.sha256(contract_bytes(contract)).hexdigest()


def contract_reference(publish_uri: str, contract: dict[str, Any]) -> dict[str, Any]:
    """What the champion's manifest records of its contract: where, and the sha256 of its bytes."""
    return {"uri": contract_uri(publish_uri), "sha256": contract_sha256(contract)}


def write_contract(publish_uri: str, contract: dict[str, Any], *, store: Store) -> None:
    """Write ``contract.json`` at the publish location (atomically, replacing the previous champion's)."""
    store.target(contract_uri(publish_uri)).write_bytes(contract_bytes(contract), overwrite=True)


def contract_for(
    publish_uri: str, champion: dict[str, Any] | None, *, store: Store
) -> tuple[dict[str, Any] | None, str]:
    """``(the champion's contract or None, why)``: read from ``contract.json`` and checked against the sha256 the
    champion's manifest records; when the file is missing or not that one (a promotion that stopped between the
    two writes, a hand edit), the contract is made again from the champion's card, which must give that sha256.

    IntegrityError when neither gives the contract the manifest records.
    """
    if champion is None:
        return None, "there is no champion yet: no contract to check against"
    reference = champion.get("contract")
    if not isinstance(reference, dict) or not reference.get("sha256"):
        return None, f"the champion {champion.get('identity')} has no contract (trained before contracts were kept)"
    target = store.target(contract_uri(publish_uri))
    data, _ = target.read_versioned()
    if data is not None and hashlib.sha256(data).hexdigest() == reference["sha256"]:
        return json.loads(data), f"the contract of the champion {champion.get('identity')}"
    card = _card(store.target(str(champion["model_uri"])))
    rebuilt = contract_document(champion, card) if card is not None else None
    # A contract written before ``feature_order`` was kept has none: made again, it must not have one either.
    earlier = None if rebuilt is None else {key: value for key, value in rebuilt.items() if key != "feature_order"}
    for candidate in (rebuilt, earlier):
        if candidate is not None and contract_sha256(candidate) == reference["sha256"]:
            LOG.warning("%s is missing or not the champion's contract; using the one made from its card", target.uri)
            return candidate, f"the contract of the champion {champion.get('identity')}, made again from its card"
    raise IntegrityError(
        f"{target.uri} is not the contract the champion {champion.get('identity')} records (sha256 "
        f"{reference['sha256'][:12]}…), and its card does not give it either; restore the champion with "
        "`pipeline promote` (which writes its contract again)"
    )


def _card(model: Target) -> dict[str, Any] | None:
    data, _ = model.sibling("metrics.json").read_versioned()
    if data is None:
        return None
    card = json.loads(data)
    return card if isinstance(card, dict) else None


def profile_target(dataset: Target) -> Target:
    """Where a dataset's profile is: beside it."""
    return dataset.sibling(PROFILE_FILE)


def write_profile(dataset: Target, result: dict[str, Any]) -> None:
    """Write the dataset's profile file beside it, unless a concurrent download of the same dataset got there first."""
    with contextlib.suppress(TargetExistsError):
        profile_target(dataset).write_bytes(contract_bytes(result))


def read_profile(dataset: Target) -> dict[str, Any] | None:
    """The dataset's profile file, or None when there is none or it cannot be read (the card then has no profile)."""
    found = profile_target(dataset)
    try:
        if not found.exists():
            return None
        value = json.loads(found.read_bytes())
    except (StorageError, ValueError) as exc:
        LOG.warning("cannot use %s (%s): the model's card gets no data profile", found.uri, exc)
        return None
    return value if isinstance(value, dict) else None


def card_sections(profile_file: dict[str, Any] | None) -> dict[str, Any]:
    """What the model's card records of its data: ``data_profile``, ``drift`` and ``schema_change``."""
    if not profile_file:
        return {}
    return {
        "data_profile": profile_file.get("profile"),
        "drift": profile_file.get("drift"),
        "schema_change": profile_file.get("schema_change"),
    }


__all__ = [
    "CATEGORY_CAP",
    "CONTRACT_FILE",
    "ON_SCHEMA_CHANGE",
    "PROFILE_FILE",
    "RESERVOIR_ROWS",
    "DataWatch",
    "card_sections",
    "check_on_schema_change",
    "contract_bytes",
    "contract_document",
    "contract_for",
    "contract_reference",
    "contract_sha256",
    "contract_uri",
    "drift",
    "format_contract",
    "format_drift",
    "profile_target",
    "promotion_block",
    "read_profile",
    "write_contract",
    "write_profile",
]


# --- text ---------------------------------------------------------------------------------------


def format_contract(contract: dict[str, Any], uri: str) -> str:
    """The contract as text: whose it is, the label, and each column's kind with its range or categories."""
    champion = contract.get("champion") or {}
    label = contract.get("label") or {}
    lines = [
        f"contract: {uri}",
        f"  champion: {champion.get('identity')} ({champion.get('model_uri')})",
        f"  made from: {(contract.get('dataset') or {}).get('uri')} ({contract.get('rows')} rows, "
        f"deciles from a sample of {contract.get('sample_rows')})",
    ]
    if label.get("set") is not None:
        lines.append(f"  label {label.get('column')!r}: one of {shown_names([str(v) for v in label['set']])}")
    else:
        lines.append(f"  label {label.get('column')!r}: numbers in {label.get('range')}")
    for name, column in (contract.get("columns") or {}).items():
        lines.append(f"  {name!r}: {_column_text(column)}")
    return "\n".join(lines)


def _column_text(column: dict[str, Any]) -> str:
    missing = f", {column['missing']} missing" if column.get("missing") else ""
    if column.get("kind") == "numeric":
        deciles = ", ".join(f"{q:g}" for q in column.get("quantiles") or [])
        return f"numeric in [{column.get('min')}, {column.get('max')}]{missing}; deciles {deciles}"
    categories = column.get("categories")
    if categories is None:
        return f"categorical, more than {CATEGORY_CAP} distinct values (frequencies not kept){missing}"
    top = sorted(categories.items(), key=lambda item: (-item[1], item[0]))[:8]
    shown = ", ".join(f"{value} {share:.1%}" for value, share in top)
    more = f" (+{len(categories) - len(top)} more)" if len(categories) > len(top) else ""
    return f"categorical, {len(categories)} values: {shown}{more}{missing}"


def format_drift(measured: dict[str, Any] | None) -> str:
    """The drift section as text, one line per feature, largest first."""
    if not measured:
        return "drift: not measured (no contract to measure against)"
    contract = measured.get("contract") or {}
    lines = [f"drift against the contract of {contract.get('champion')}:"]
    features = measured.get("features") or {}
    for name, entry in sorted(features.items(), key=lambda item: -(item[1].get("value") or 0.0)):
        if entry.get("value") is None:
            lines.append(f"  {name!r}: {entry.get('note')}")
            continue
        text = f"  {name!r}: {entry['measure']} {entry['value']:.4f}"
        if entry.get("unseen"):
            text += f", unseen categories {entry['unseen_share']:.1%} ({', '.join(map(str, entry['unseen']))})"
        lines.append(text)
    return "\n".join(lines)
