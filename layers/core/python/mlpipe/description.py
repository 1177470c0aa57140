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
- ``categorical_columns``: feature columns that are categorical whatever their values (names or
  indices): read as text and one-hot encoded, never refused as a column of numbers with a typo
  (see ``TYPO_SHARE``). Left out of ``to_dict()`` when empty, so that a description without it
  has the JSON form, and the identities, it had before the field existed.
- ``delimiter``: ``","`` (default), ``";"``, ``"\\t"`` (or ``"tab"``), ``"|"``.
- ``missing``: ``"reject"`` (default: an empty or NA cell is an error) or ``"impute"`` (median for
  numeric columns, most frequent value for categorical ones, inside the model).
- ``labels``: an allow-list of label values; a label outside it is an error with line and column.
- ``na_values``: the cell values that mean "missing" (default ``NA_VALUES``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlpipe.exceptions import InvalidDatasetError, InvalidRequestError

DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
HEADER_CHOICES = ("auto", "true", "false")
MISSING_CHOICES = ("reject", "impute")
# What a cell says when it has no value: the empty string and the usual spellings of NA, among them
# the UCI archive's "?". A column name or a category that happens to be one of these reads as missing.
NA_VALUES: tuple[str, ...] = ("", "?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "#N/A", "<NA>")
FIELDS = (
    "header",
    "label_column",
    "feature_columns",
    "drop_columns",
    "delimiter",
    "missing",
    "labels",
    "na_values",
    "categorical_columns",
)
# A plain decimal number, as pandas' CSV reader parses it: Python's float() also takes "1_0", NaN,
# infinity and non-ASCII digits, which would pass here and then fail the training.
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
# The largest magnitude a number in a numeric column may have. Every estimator must train on what
# the download accepts: random forest's trees read the features as float32 (largest finite
# 3.4e38), and standard scaling squares deviations, (2e38)^2 times the rows, far below float64's
# 1.8e308. A value beyond it (a 400-digit integer, 1e308) is an InvalidDatasetError naming the cell.
MAX_MAGNITUDE = 1e38
SHORT_NUMBER = 20  # a number of at most this many characters and no exponent is below 1e21: within range
# A column whose non-missing cells are numbers but for a few (at most this share of them, or just
# one) is a column of numbers with typos: an InvalidDatasetError naming the first non-number, unless
# ``categorical_columns`` declares the column. A larger share of text makes the column categorical.
TYPO_SHARE = 0.05
INT64 = (-(2**63), 2**63 - 1)

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
    categorical_columns: tuple[Column, ...] = ()

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
            categorical_columns=_columns(merged["categorical_columns"], f"{where}.categorical_columns", allow_none=True)
            or (),
        )
        description.check(where)
        return description

    def check(self, where: str = "dataset") -> None:
        """What the description alone shows to be wrong (a label that is also a feature, ...); linear in its columns."""
        features = set(self.feature_columns or ())
        dropped = set(self.drop_columns)
        if self.feature_columns is not None and self.drop_columns:
            raise InvalidRequestError(
                f"{where}: give feature_columns or drop_columns, not both (drop_columns means every other column)"
            )
        if self.label_column in features:
            raise InvalidRequestError(
                f"{where}: the label column {self.label_column!r} is also in feature_columns; "
                "a model cannot learn the label from itself"
            )
        if self.label_column in dropped:
            raise InvalidRequestError(f"{where}: the label column {self.label_column!r} is also in drop_columns")
        for name, columns in (
            ("feature_columns", self.feature_columns or ()),
            ("drop_columns", self.drop_columns),
            ("categorical_columns", self.categorical_columns),
        ):
            duplicates = sorted({repr(c) for c in _repeated(columns)})
            if duplicates:
                raise InvalidRequestError(f"{where}.{name} names {', '.join(duplicates)} more than once")
        if self.feature_columns == ():
            raise InvalidRequestError(f"{where}.feature_columns is empty; name at least one column or leave it out")
        self._check_categorical(where, features, dropped)

    def _check_categorical(self, where: str, features: set[Column], dropped: set[Column]) -> None:
        """categorical_columns names features: not the label, nothing dropped, nothing outside feature_columns.

        Only what the description alone shows: a name and an index may be the same column, which
        ``ColumnLayout.resolve`` decides once the file's columns are known.
        """
        by_name = self.feature_columns is not None and all(isinstance(c, str) for c in self.feature_columns)
        for column in self.categorical_columns:
            if column == self.label_column:
                raise InvalidRequestError(
                    f"{where}: the label column {column!r} is also in categorical_columns; "
                    "categorical_columns names feature columns"
                )
            if column in dropped:
                raise InvalidRequestError(f"{where}: categorical_columns entry {column!r} is also in drop_columns")
            if by_name and isinstance(column, str) and column not in features:
                raise InvalidRequestError(
                    f"{where}: categorical_columns entry {column!r} is not in feature_columns; "
                    "declare only columns the model is trained on"
                )

    @property
    def names_columns(self) -> bool:
        """True when some column is given by name, which needs a header row."""
        given = [self.label_column, *(self.feature_columns or ()), *self.drop_columns, *self.categorical_columns]
        return any(isinstance(column, str) for column in given)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, every field present (the delimiter as the character itself) but ``categorical_columns``,
        which is there only when it names a column: a description without it keeps its earlier form (and identity)."""
        form = {
            "header": self.header,
            "label_column": self.label_column,
            "feature_columns": None if self.feature_columns is None else list(self.feature_columns),
            "drop_columns": list(self.drop_columns),
            "delimiter": self.delimiter,
            "missing": self.missing,
            "labels": None if self.labels is None else list(self.labels),
            "na_values": list(self.na_values),
        }
        if self.categorical_columns:
            form["categorical_columns"] = list(self.categorical_columns)
        return form


def _repeated(columns: Sequence[Column]) -> list[Column]:
    """The entries of ``columns`` that occur more than once (each once): linear, with a set."""
    seen: set[Column] = set()
    repeated: dict[Column, None] = {}
    for column in columns:
        if column in seen:
            repeated[column] = None
        seen.add(column)
    return list(repeated)


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
    4. the first row is the only one: a header when none of its cells is a number (names with no
       data below them, which the validator then reports as such);
    5. otherwise the first row is data.

    ``sample`` is the rows after the first that the caller looked at (the first few hundred).
    """
    if description.header != "auto":
        present = description.header == "true"
        return HeaderDecision(present, f"header: {description.header} in the description")
    if description.names_columns:
        return HeaderDecision(True, "auto: the description names columns, so the first row is their names")
    na = set(description.na_values)
    if not sample:
        cells = [cell.strip() for cell in first if cell.strip() not in na]
        if cells and not any(NUMBER.fullmatch(cell) for cell in cells):
            return HeaderDecision(True, "auto: the only row has no number in it, so it is names")
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
        return _all_text_header(first, rows)
    return HeaderDecision(False, "auto: the first row has the same kinds of values as the rows below it")


def _all_text_header(first: Sequence[str], rows: Sequence[Sequence[str]]) -> HeaderDecision:
    """Rule 3 of ``decide_header``: in a file with no numeric column, names are not values."""
    repeated = [i for i in range(len(first)) if first[i].strip() in {row[i].strip() for row in rows}]
    if not repeated and all(cell.strip() for cell in first):
        return HeaderDecision(
            True, "auto: no column is numeric and no cell of the first row occurs again in its column"
        )
    return HeaderDecision(
        False,
        "auto: no column is numeric and the first row's values occur again below it, so it is data "
        "(set header: true if it is a header)",
    )


@dataclass(frozen=True)
class ColumnLayout:
    """The columns of a file as the description picks them: names, the label's index, the features' indices."""

    names: tuple[str, ...]
    label: int
    features: tuple[int, ...]
    header: HeaderDecision = field(default_factory=lambda: HeaderDecision(False, ""))
    categorical: tuple[int, ...] = ()  # the features ``categorical_columns`` declares

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
        position: dict[str, int] = {}
        if header.present:
            names = [cell.strip() or f"column_{i}" for i, cell in enumerate(first)]
            for index, name in enumerate(names):
                if name in position:
                    raise InvalidDatasetError(
                        f"invalid dataset at {uri}, line 1: the header names {name!r} twice (columns "
                        f"{position[name]} and {index}); column names must be unique"
                    )
                position[name] = index
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
            if column not in position:
                raise InvalidDatasetError(
                    f"invalid dataset at {uri}: {what} {column!r} is not a column of the file; its header has: "
                    + shown_names(names)
                )
            return position[column]

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
        categorical = _categorical(description, names, label, features, index_of, uri)
        return cls(names=tuple(names), label=label, features=tuple(features), header=header, categorical=categorical)


def _categorical(
    description: DatasetDescription,
    names: Sequence[str],
    label: int,
    features: Sequence[int],
    index_of: Callable[[Column, str], int],
    uri: str,
) -> tuple[int, ...]:
    """The indices of ``categorical_columns``, each a feature column of the file, in file order."""
    chosen = set(features)
    dropped = {index_of(c, "drop_columns entry") for c in description.drop_columns}
    found: set[int] = set()
    for column in description.categorical_columns:
        index = index_of(column, "categorical_columns entry")
        name = names[index]
        if index == label:
            raise InvalidDatasetError(
                f"invalid dataset at {uri}: the label column {name!r} is declared categorical (categorical_columns); "
                "categorical_columns names feature columns"
            )
        if index in dropped:
            raise InvalidDatasetError(
                f"invalid dataset at {uri}: categorical_columns: {name!r} is dropped (drop_columns); "
                "declare only columns the model is trained on"
            )
        if index not in chosen:
            raise InvalidDatasetError(
                f"invalid dataset at {uri}: categorical_columns: {name!r} is not a feature column (feature_columns); "
                "declare only columns the model is trained on"
            )
        if index in found:
            raise InvalidDatasetError(
                f"invalid dataset at {uri}: categorical_columns names {name!r} twice (as a name and an index)"
            )
        found.add(index)
    return tuple(sorted(found))


def shown_names(names: Sequence[str], limit: int = 50) -> str:
    """Column names for a message: the first ``limit`` of them, and how many more."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def label_kind(values: Sequence[str]) -> str:
    """``"integer"`` when every label is an integer that fits in int64 (the model then predicts ints), else
    ``"string"``: labels beyond int64 (an id-like 25-digit code) stay text, as written."""
    return "integer" if values and all(is_int64(v) for v in values) else "string"


def is_int64(text: str) -> bool:
    """Whether ``text`` is an integer (ASCII digits, a sign) within int64, without converting a long one."""
    if not INTEGER.fullmatch(text):
        return False
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > len(str(2**63)):
        return False
    value = int(digits or "0")
    return INT64[0] <= (-value if text.startswith("-") else value) <= INT64[1]


def number_in_range(text: str) -> bool:
    """Whether ``text``, a cell of ``NUMBER``'s shape, is within ±``MAX_MAGNITUDE`` (cheaply: short plain ones are)."""
    if len(text) <= SHORT_NUMBER and "e" not in text and "E" not in text:
        return True  # at most 20 characters, no exponent: below 1e21
    return abs(float(text)) <= MAX_MAGNITUDE


EXCEL_SEP = re.compile(r"sep=(.)", re.IGNORECASE | re.DOTALL)


def excel_sep_line(row: Sequence[str], delimiter: str) -> str | None:
    """The delimiter Excel's first line ``sep=;`` names, when ``row`` (the first row, split by ``delimiter``) is one."""
    match = EXCEL_SEP.fullmatch(delimiter.join(row).strip(" \r\n").removeprefix("\ufeff"))
    return match.group(1) if match else None


def excel_sep_message(named: str, delimiter: str) -> str:
    """What to do about Excel's ``sep=`` line: remove it, and set the delimiter it names when it is another."""
    message = f"{'sep=' + named!r} is the line Excel writes to name the delimiter, not CSV: remove that line"
    if named != delimiter:
        message += f", and set delimiter: {named!r} in the dataset description (it is {delimiter!r})"
    return message
