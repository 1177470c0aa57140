"""The dataset description: how to read a user's CSV (header, delimiter, which column is the label, ...).

A description is given as a JSON object (deploy-time ``DatasetDescription``, an execution input's
``dataset``, or ``pipeline run`` flags) and checked here, field by field, before anything is
downloaded. Checks that need the file's header (does the label column exist?) happen in
``ColumnLayout.resolve`` once the first rows are read. Pure Python: the plan imports this.

Fields (all optional):

- ``header``: ``"auto"`` (default), ``true`` or ``false``; see ``decide_header`` for the rule.
- ``label_column``: a column name (the file has a header) or a 0-based index, negative from the
  end; default ``-1``, the last column.
- ``feature_columns``: the columns to train on (names or indices); default every column but the
  label. ``drop_columns`` is the same from the other side; give one of the two, not both.
- ``delimiter``: ``","`` (default), ``";"``, ``"\\t"`` (or ``"tab"``), ``"|"``.
- ``missing``: ``"reject"`` (default: an empty or NA cell is an error) or ``"impute"`` (median for
  numeric columns, most frequent value for categorical ones, inside the model).
- ``labels``: an allow-list of label values; a label outside it is an error with line and column.
- ``na_values``: the cell values that mean "missing" (default ``NA_VALUES``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlpipe.exceptions import InvalidDatasetError, InvalidRequestError

DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
HEADER_CHOICES = ("auto", "true", "false")
MISSING_CHOICES = ("reject", "impute")
# What a cell says when it has no value: the empty string and the usual spellings of NA, among them
# the UCI archive's "?". A column name or a category that happens to be one of these reads as missing.
NA_VALUES: tuple[str, ...] = ("", "?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "#N/A", "<NA>")
FIELDS = ("header", "label_column", "feature_columns", "drop_columns", "delimiter", "missing", "labels", "na_values")
# A plain decimal number, as pandas' CSV reader parses it: Python's float() also takes "1_0", NaN,
# infinity and non-ASCII digits, which would pass here and then fail the training.
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)

Column = str | int


@dataclass(frozen=True)
class DatasetDescription:
    """A checked dataset description; ``to_dict()`` is its JSON form, with every default spelled out."""

    header: str = "auto"
    label_column: Column = -1
    feature_columns: tuple[Column, ...] | None = None
    drop_columns: tuple[Column, ...] = ()
    delimiter: str = ","
    missing: str = "reject"
    labels: tuple[str, ...] | None = None
    na_values: tuple[str, ...] = NA_VALUES

    @classmethod
    def from_value(
        cls, value: Any, *, where: str = "dataset", base: DatasetDescription | None = None
    ) -> DatasetDescription:
        """Check a JSON description (merged field by field over ``base``); InvalidRequestError names the field."""
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise InvalidRequestError(f"{where} must be a JSON object describing the CSV, got {value!r}")
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise InvalidRequestError(
                f"unknown field(s) in {where}: {', '.join(unknown)}; a dataset description has: {', '.join(FIELDS)}"
            )
        start = base or cls()
        merged = {name: getattr(start, name) for name in FIELDS} | dict(value)
        description = cls(
            header=_header(merged["header"], f"{where}.header"),
            label_column=_column(merged["label_column"], f"{where}.label_column"),
            feature_columns=_columns(merged["feature_columns"], f"{where}.feature_columns", allow_none=True),
            drop_columns=_columns(merged["drop_columns"], f"{where}.drop_columns", allow_none=False) or (),
            delimiter=_choice(merged["delimiter"], DELIMITERS, f"{where}.delimiter", mapping=True),
            missing=_choice(merged["missing"], MISSING_CHOICES, f"{where}.missing"),
            labels=_labels(merged["labels"], f"{where}.labels"),
            na_values=_strings(merged["na_values"], f"{where}.na_values"),
        )
        description.check(where)
        return description

    def check(self, where: str = "dataset") -> None:
        """What the description alone shows to be wrong (a label that is also a feature, ...)."""
        if self.feature_columns is not None and self.drop_columns:
            raise InvalidRequestError(
                f"{where}: give feature_columns or drop_columns, not both (drop_columns means every other column)"
            )
        if self.feature_columns is not None and self.label_column in self.feature_columns:
            raise InvalidRequestError(
                f"{where}: the label column {self.label_column!r} is also in feature_columns; "
                "a model cannot learn the label from itself"
            )
        if self.label_column in self.drop_columns:
            raise InvalidRequestError(f"{where}: the label column {self.label_column!r} is also in drop_columns")
        for name, columns in (("feature_columns", self.feature_columns or ()), ("drop_columns", self.drop_columns)):
            duplicates = sorted({repr(c) for c in columns if list(columns).count(c) > 1})
            if duplicates:
                raise InvalidRequestError(f"{where}.{name} names {', '.join(duplicates)} more than once")
        if self.feature_columns == ():
            raise InvalidRequestError(f"{where}.feature_columns is empty; name at least one column or leave it out")

    @property
    def names_columns(self) -> bool:
        """True when some column is given by name, which needs a header row."""
        given = [self.label_column, *(self.feature_columns or ()), *self.drop_columns]
        return any(isinstance(column, str) for column in given)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, every field present (the delimiter as the character itself)."""
        return {
            "header": self.header,
            "label_column": self.label_column,
            "feature_columns": None if self.feature_columns is None else list(self.feature_columns),
            "drop_columns": list(self.drop_columns),
            "delimiter": self.delimiter,
            "missing": self.missing,
            "labels": None if self.labels is None else list(self.labels),
            "na_values": list(self.na_values),
        }


def _header(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in HEADER_CHOICES:
        return value.lower()
    raise InvalidRequestError(f"{where} must be auto, true or false, got {value!r}")


def _column(value: Any, where: str) -> Column:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequestError(f"{where} must be a column name or a 0-based index, got {value!r}")
    if isinstance(value, str) and not value.strip():
        raise InvalidRequestError(f"{where} must not be an empty name")
    return value.strip() if isinstance(value, str) else value


def _columns(value: Any, where: str, *, allow_none: bool) -> tuple[Column, ...] | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidRequestError(f"{where} must be a list of column names or 0-based indices, got {value!r}")
    return tuple(_column(item, f"{where}[{index}]") for index, item in enumerate(value))


def _choice(value: Any, choices: Sequence[str] | Mapping[str, str], where: str, *, mapping: bool = False) -> str:
    if isinstance(value, str) and value in choices:
        return choices[value] if mapping and isinstance(choices, Mapping) else value
    shown = ", ".join(repr(c) for c in choices)
    raise InvalidRequestError(f"{where} must be one of {shown}, got {value!r}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{where} must be a list of strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _labels(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidRequestError(f"{where} must be a list of label values, got {value!r}")
    labels = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise InvalidRequestError(f"{where} must hold strings or integers, got {item!r}")
        labels.append(str(item).strip())
    if len(set(labels)) < 2:
        raise InvalidRequestError(f"{where} must list at least two distinct labels, got {value!r}")
    return tuple(labels)


# --- the header and the columns, once the first rows are known -----------------------------------
@dataclass(frozen=True)
class HeaderDecision:
    """Whether the first row is a header, and why (recorded in the model card)."""

    present: bool
    reason: str


def decide_header(
    description: DatasetDescription, first: Sequence[str], sample: Sequence[Sequence[str]]
) -> HeaderDecision:
    """Whether ``first`` (the first row) is a header, by ``description.header``.

    ``auto`` decides, in this order:

    1. the description names a column (``label_column: "quality"``): the file has a header;
    2. some column is numeric in every sampled row below the first but not in the first: a header
       (the usual case: names over numbers);
    3. no column is numeric below the first row (an all-text file): a header when no cell of the
       first row occurs again in its column in the sampled rows below (names are not values);
    4. otherwise the first row is data.

    ``sample`` is the rows after the first that the caller looked at (the first few hundred).
    """
    if description.header != "auto":
        present = description.header == "true"
        return HeaderDecision(present, f"header: {description.header} in the description")
    if description.names_columns:
        return HeaderDecision(True, "auto: the description names columns, so the first row is their names")
    na = set(description.na_values)
    width = len(first)
    rows = [row for row in sample if len(row) == width]
    numeric_below = []
    for index in range(width):
        values = [row[index].strip() for row in rows if row[index].strip() not in na]
        numeric_below.append(bool(values) and all(NUMBER.fullmatch(v) for v in values))
    for index, numeric in enumerate(numeric_below):
        cell = first[index].strip()
        if numeric and cell not in na and not NUMBER.fullmatch(cell):
            return HeaderDecision(True, f"auto: column {index} is numeric below the first row but not in it ({cell!r})")
    if rows and not any(numeric_below):
        repeated = [i for i in range(width) if first[i].strip() in {row[i].strip() for row in rows}]
        if not repeated and all(cell.strip() for cell in first):
            return HeaderDecision(
                True, "auto: no column is numeric and no cell of the first row occurs again in its column"
            )
        return HeaderDecision(
            False,
            "auto: no column is numeric and the first row's values occur again below it, so it is data "
            "(set header: true if it is a header)",
        )
    return HeaderDecision(False, "auto: the first row has the same kinds of values as the rows below it")


@dataclass(frozen=True)
class ColumnLayout:
    """The columns of a file as the description picks them: names, the label's index, the features' indices."""

    names: tuple[str, ...]
    label: int
    features: tuple[int, ...]
    header: HeaderDecision = field(default_factory=lambda: HeaderDecision(False, ""))

    @property
    def label_name(self) -> str:
        """The label column's name."""
        return self.names[self.label]

    @property
    def feature_names(self) -> list[str]:
        """The feature columns' names, in file order: the model's input columns."""
        return [self.names[i] for i in self.features]

    @classmethod
    def resolve(
        cls, description: DatasetDescription, first: Sequence[str], header: HeaderDecision, *, uri: str
    ) -> ColumnLayout:
        """Pick the label and features from the first row (the header, or the first data row).

        Raises InvalidDatasetError naming the column that does not exist, with the header's columns.
        """
        width = len(first)
        if header.present:
            names = [cell.strip() or f"column_{i}" for i, cell in enumerate(first)]
            seen: dict[str, int] = {}
            for index, name in enumerate(names):
                if name in seen:
                    raise InvalidDatasetError(
                        f"invalid dataset at {uri}, line 1: the header names {name!r} twice (columns {seen[name]} "
                        f"and {index}); column names must be unique"
                    )
                seen[name] = index
        else:
            names = [f"column_{i}" for i in range(width)]

        def index_of(column: Column, what: str) -> int:
            if isinstance(column, int):
                index = column + width if column < 0 else column
                if not 0 <= index < width:
                    raise InvalidDatasetError(
                        f"invalid dataset at {uri}: {what} {column} is out of range: the file has {width} columns "
                        f"(0 to {width - 1}, or -1 to -{width})"
                    )
                return index
            if not header.present:
                raise InvalidDatasetError(
                    f"invalid dataset at {uri}: {what} {column!r} is a name, but the file has no header row "
                    f"({header.reason}); name columns by index, or set header: true"
                )
            if column not in names:
                raise InvalidDatasetError(
                    f"invalid dataset at {uri}: {what} {column!r} is not a column of the file; its header has: "
                    + ", ".join(names)
                )
            return names.index(column)

        if width < 2:
            raise InvalidDatasetError(
                f"invalid dataset at {uri}, line 1: found 1 column; a dataset needs a label and at least one "
                f"feature (is the delimiter right? it is {description.delimiter!r})"
            )
        label = index_of(description.label_column, "label_column")
        dropped = {index_of(c, "drop_columns entry") for c in description.drop_columns}
        if description.feature_columns is not None:
            features = [index_of(c, "feature_columns entry") for c in description.feature_columns]
            if label in features:
                raise InvalidDatasetError(
                    f"invalid dataset at {uri}: the label column {names[label]!r} is also a feature column"
                )
            if len(set(features)) != len(features):
                raise InvalidDatasetError(f"invalid dataset at {uri}: feature_columns names a column twice")
            features = sorted(features)
        else:
            if label in dropped:
                raise InvalidDatasetError(f"invalid dataset at {uri}: the label column {names[label]!r} is dropped")
            features = [i for i in range(width) if i != label and i not in dropped]
        if not features:
            raise InvalidDatasetError(f"invalid dataset at {uri}: no feature column is left to train on")
        return cls(names=tuple(names), label=label, features=tuple(features), header=header)


def label_kind(values: Sequence[str]) -> str:
    """``"integer"`` when every label is an integer (the model then predicts ints), else ``"string"``."""
    return "integer" if values and all(INTEGER.fullmatch(v) for v in values) else "string"
