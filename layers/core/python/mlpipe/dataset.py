"""The dataset, checked row by row while it streams, against its description (pure Python: no pandas here).

The file is read with the standard library's ``csv`` module (RFC 4180: quoted fields may hold the
delimiter, quotes and newlines), one row at a time, so memory stays flat in the file's size. The
first rows (up to ``SAMPLE_ROWS``) are held back to decide whether the first one is a header
(``description.decide_header``); after that each row is checked as it arrives:

- the same number of columns as the first row (and not Excel's ``sep=;`` line first);
- a label in every row (and in ``labels``, when the description has an allow-list);
- no empty or NA feature cell unless ``missing: impute``;
- numbers within ±``MAX_MAGNITUDE`` in a numeric column (what every estimator can train on);
- no column of numbers with a few non-numbers in it (at most ``TYPO_SHARE`` of its values, or
  one): a typo, named, unless ``categorical_columns`` declares the column;
- at least two classes, each with at least ``min_class_rows`` rows (the cross-validation's folds).

Blank lines are accepted only at the end (the UCI files end with one), and so are CRLF line
endings and a UTF-8 byte order mark. Each column's kind (numeric when every value is a number,
categorical when it is declared so or enough of its values are text) is recorded in the result
for training to read the file with. Integer labels are integers when they all fit in int64, else
text. The column checks are decided at the end of the file, by counts: memory stays flat in its size.

Anything this accepts trains (``tests/unit/test_training_trust.py``); ``RULES`` numbers these
rules, so that training does not reuse a check made by older ones.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from mlpipe.description import (
    MAX_MAGNITUDE,
    NUMBER,
    SHORT_NUMBER,
    TYPO_SHARE,
    ColumnLayout,
    DatasetDescription,
    HeaderDecision,
    decide_header,
    excel_sep_line,
    excel_sep_message,
    label_kind,
    number_in_range,
)
from mlpipe.exceptions import InvalidDatasetError
from mlpipe.problem import (
    AUTO,
    CLASSIFICATION,
    DEFAULT_TARGET_TRANSFORM,
    DISTINCT_CAP,
    REGRESSION,
    LabelStats,
    LabelTally,
    check_regression_label,
    decide_task,
    regression_hint,
)

MAX_LINE_BYTES = 1024 * 1024  # bounds memory on a body with no newlines at all
SAMPLE_ROWS = 200  # rows looked at to decide whether the first one is a header
_FIELD_LIMIT = MAX_LINE_BYTES
# The version of the rules above: a check recorded by older rules (lineage.json) is not reused by training.
# 2: numbers within MAX_MAGNITUDE, typos in columns of numbers, categorical_columns, labels beyond int64 as text.
# 3: the label's stats (mlpipe.problem) and the task they decide; a regression target's checks.
RULES = 3


@dataclass(frozen=True)
class DatasetStats:
    """What a valid dataset held: its layout, rows, per-class counts, column kinds, size and sha256."""

    rows: int
    class_counts: dict[str, int]
    bytes: int
    sha256: str
    layout: ColumnLayout
    kinds: dict[str, str]  # feature name -> "numeric" | "categorical"
    missing: dict[str, int]  # feature name -> empty or NA cells (only with missing: impute)
    label_kind: str  # "integer" | "string"
    first_text: dict[str, str] = field(default_factory=dict)  # categorical feature -> its first non-number, where
    rules: int = RULES  # the validator's rules that made this check (older records: 1)
    label: LabelStats | None = None  # the label's summary (mlpipe.problem); None in records of older rules
    task: str = CLASSIFICATION  # the task the checks were made for (mlpipe.problem.decide_task)

    def profile(self) -> dict[str, Any]:
        """The JSON form recorded in the model card."""
        return {
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "header": {"present": self.layout.header.present, "reason": self.layout.header.reason},
            "columns": list(self.layout.names),
            "label_column": self.layout.label_name,
            "feature_columns": self.layout.feature_names,
            "kinds": self.kinds,
            "missing": self.missing,
            "label_kind": self.label_kind,
            "class_counts": self.class_counts,
            "why_categorical": self.first_text,
            "label": self.label.to_dict() if self.label else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON, for ``from_dict`` (the download records it in the dataset's lineage.json)."""
        return {
            "rows": self.rows,
            "class_counts": self.class_counts,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "layout": {
                "names": list(self.layout.names),
                "label": self.layout.label,
                "features": list(self.layout.features),
                "categorical": list(self.layout.categorical),
                "header": {"present": self.layout.header.present, "reason": self.layout.header.reason},
            },
            "kinds": self.kinds,
            "missing": self.missing,
            "label_kind": self.label_kind,
            "first_text": self.first_text,
            "rules": self.rules,
            "label": self.label.to_dict() if self.label else None,
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetStats:
        """The stats ``to_dict`` gave; KeyError, TypeError or ValueError when ``data`` is not such a record."""
        layout = data["layout"]
        return cls(
            rows=int(data["rows"]),
            class_counts={str(k): int(v) for k, v in data["class_counts"].items()},
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
            layout=ColumnLayout(
                names=tuple(str(n) for n in layout["names"]),
                label=int(layout["label"]),
                features=tuple(int(i) for i in layout["features"]),
                header=HeaderDecision(bool(layout["header"]["present"]), str(layout["header"]["reason"])),
                categorical=tuple(int(i) for i in layout.get("categorical", ())),
            ),
            kinds={str(k): str(v) for k, v in data["kinds"].items()},
            missing={str(k): int(v) for k, v in data["missing"].items()},
            label_kind=str(data["label_kind"]),
            first_text={str(k): str(v) for k, v in data["first_text"].items()},
            rules=int(data.get("rules", 1)),
            label=LabelStats.from_dict(data["label"]) if data.get("label") else None,
            task=str(data.get("task", CLASSIFICATION)),
        )


class RowWatch(Protocol):
    """What else looks at the rows while they stream (``mlpipe.contract``): told the layout, each valid row, the stats.

    Each may raise a PipelineError to refuse the dataset: inside the download's write, so nothing is written.
    """

    def start(self, layout: ColumnLayout) -> None:
        """The columns, once the header is decided."""

    def row(self, line_no: int, row: list[str]) -> None:
        """A row that passed the checks (the line it starts on, its cells)."""

    def finish(self, stats: DatasetStats) -> None:
        """The end of the file: the stats of the valid dataset."""


@dataclass
class _Lines:
    """Splits byte chunks into decoded lines (line endings kept, as ``csv`` wants), counting bytes and lines."""

    uri: str
    chunks: Iterable[bytes]
    size: int = 0
    line_no: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def __iter__(self) -> Iterator[str]:
        pending = b""
        for chunk in self.chunks:
            self.size += len(chunk)
            self.digest.update(chunk)
            data = pending + chunk
            start = 0
            while (end := data.find(b"\n", start)) != -1:
                yield self._decode(data[start : end + 1])
                start = end + 1
            pending = data[start:]
            if len(pending) > MAX_LINE_BYTES:
                _fail(
                    self.uri,
                    self.line_no + 1,
                    None,
                    f"a line longer than {MAX_LINE_BYTES} bytes; this is not a CSV file (is the source URL right?)",
                )
        if pending:
            yield self._decode(pending)

    def _decode(self, raw: bytes) -> str:
        self.line_no += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            _fail(self.uri, self.line_no, None, f"binary data, not UTF-8 text (byte {exc.start + 1}); check the source")
        if self.line_no == 1:
            text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark
            if text.lstrip().startswith("<"):
                _fail(self.uri, 1, 1, "this looks like an HTML page, not CSV; check the source URL")
        if "\x00" in text:
            _fail(self.uri, self.line_no, None, "binary data (a NUL byte), not CSV text; check the source URL")
        return text


@dataclass
class CsvRows:
    """A CSV given as byte chunks, row by row: ``(the line the row starts on, its cells)``, blank rows included.

    The standard library's ``csv`` (RFC 4180, strict), fed the lines of ``_Lines`` (UTF-8, no NUL
    byte, no line over ``MAX_LINE_BYTES``); any problem is an InvalidDatasetError naming the line.
    Used by the validator and by ``mlpipe.predicting``, so that a file is read alike by both.
    """

    uri: str
    chunks: Iterable[bytes]
    delimiter: str = ","

    def __post_init__(self) -> None:
        self.lines = _Lines(self.uri, self.chunks)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
        reader = csv.reader(self.lines, delimiter=self.delimiter, quotechar='"', skipinitialspace=True, strict=True)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field limit" in str(exc):
                    _fail(
                        self.uri,
                        start,
                        None,
                        f"a field longer than {_FIELD_LIMIT} bytes (from this line to line {self.lines.line_no}): "
                        "is a quote left open?",
                    )
                _fail(self.uri, self.lines.line_no, None, f"malformed CSV ({exc}); quote fields that hold quotes")
            yield start, row
            start = self.lines.line_no + 1


@dataclass
class DatasetValidator:
    """Validate a CSV given as byte chunks against ``description``; ``validate()`` returns its stats."""

    uri: str
    description: DatasetDescription = field(default_factory=DatasetDescription)
    min_class_rows: int = 1  # the run's cv_folds: stratified k-fold needs k rows of every class
    task: str = AUTO  # the run's task (mlpipe.problem): what the label is checked as
    target_transform: str = DEFAULT_TARGET_TRANSFORM
    watch: RowWatch | None = None  # the data contract's check and sketch (mlpipe.contract), when the run has them

    def validate(self, chunks: Iterable[bytes]) -> DatasetStats:
        """Read every row; raise InvalidDatasetError at the first problem (line and column named)."""
        reader = CsvRows(self.uri, chunks, self.description.delimiter)
        rows = self._rows(reader)
        try:
            first_line, first = next(rows)
        except StopIteration:
            _fail(self.uri, None, None, "the dataset is empty (no data rows); check the source URL")
        named = excel_sep_line(first, self.description.delimiter) if first_line == 1 else None
        if named is not None:
            _fail(self.uri, 1, None, excel_sep_message(named, self.description.delimiter))
        held: list[tuple[int, list[str]]] = []
        for item in rows:
            held.append(item)
            if len(held) >= SAMPLE_ROWS:
                break
        header = decide_header(self.description, first, [row for _, row in held])
        layout = ColumnLayout.resolve(self.description, first, header, uri=self.uri)
        if self.watch is not None:
            self.watch.start(layout)
        check = _RowCheck(
            self.uri,
            self.description,
            layout,
            task=self.task,
            target_transform=self.target_transform,
            watch=self.watch,
        )
        if not header.present:
            check.row(first_line, first)
        for line_no, row in held:
            check.row(line_no, row)
        for line_no, row in rows:
            check.row(line_no, row)
        stats = check.finish(self.min_class_rows, reader.lines.size, reader.lines.digest.hexdigest())
        if self.watch is not None:
            self.watch.finish(stats)
        return stats

    def _rows(self, reader: CsvRows) -> Iterator[tuple[int, list[str]]]:
        """Non-blank rows with the line they start on; blank lines only at the end."""
        blank_since: int | None = None
        for start, row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                if blank_since is None:
                    blank_since = start
                continue
            if blank_since is not None:
                _fail(
                    self.uri,
                    blank_since,
                    None,
                    f"blank line inside the data (data continues at line {start}); blank lines are only allowed at "
                    "the end",
                )
            yield start, row


@dataclass
class _Column:
    """What the rows showed of one feature column: counts, and where its first text and first too-large number are."""

    numbers: int = 0
    texts: int = 0
    missing: int = 0
    first_text: tuple[int, str] | None = None
    too_large: tuple[int, str] | None = None


@dataclass
class _RowCheck:
    uri: str
    description: DatasetDescription
    layout: ColumnLayout
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    last_line: int = 0
    task: str = AUTO
    target_transform: str = DEFAULT_TARGET_TRANSFORM
    tally: LabelTally = field(default_factory=LabelTally)
    capped: bool = False  # more than DISTINCT_CAP distinct numeric labels: no longer counted (a regression target)
    watch: RowWatch | None = None

    def __post_init__(self) -> None:
        self.na = set(self.description.na_values)
        self.allowed = set(self.description.labels) if self.description.labels is not None else None
        self.impute = self.description.missing == "impute"
        self.declared = set(self.layout.categorical)
        self.columns = {index: _Column() for index in self.layout.features}
        self.width = len(self.layout.names)

    def row(self, line_no: int, row: list[str]) -> None:
        if len(row) != self.width:
            hint = ""
            if len(row) == 1:
                others = [d for d in (",", ";", "\t", "|") if d != self.description.delimiter and d in row[0]]
                if others:
                    hint = f" (the delimiter is {self.description.delimiter!r}: is it {others[0]!r}?)"
            _fail(
                self.uri, line_no, None, f"expected {self.width} columns, as in the first row, found {len(row)}{hint}"
            )
        label = self._label(line_no, row)
        self._features(line_no, row)
        self.tally.add(line_no, label)
        if not self.capped:
            self.counts[label] = self.counts.get(label, 0) + 1
            if len(self.counts) > DISTINCT_CAP and self._may_cap():
                self.capped = True
                self.counts = {}
        self.rows += 1
        self.last_line = line_no
        if self.watch is not None:
            self.watch.row(line_no, row)

    def _label(self, line_no: int, row: list[str]) -> str:
        label = row[self.layout.label].strip()
        if label in self.na:
            _fail(
                self.uri,
                line_no,
                self.layout.label + 1,
                f"missing label in the label column {self.layout.label_name!r}",
            )
        if self.allowed is not None and label not in self.allowed:
            _fail(
                self.uri,
                line_no,
                self.layout.label + 1,
                f"unknown label {_shown(label)!r}; the description allows only {', '.join(sorted(self.allowed))}",
            )
        return label

    def _may_cap(self) -> bool:
        """Whether the label counts may stop: a numeric label so far, and not a classification by request."""
        return self.task != CLASSIFICATION and self.tally.first_non_number is None

    def _features(self, line_no: int, row: list[str]) -> None:
        # The hot loop (8 s per million rows): numbers are counted at the end, as the cells that are neither
        # missing nor text; a number's magnitude is looked at only when it is long or has an exponent.
        na, declared = self.na, self.declared
        for index, column in self.columns.items():
            value = row[index].strip()
            if value in na:
                if not self.impute:
                    _fail(
                        self.uri,
                        line_no,
                        index + 1,
                        f"missing value ({value or 'empty'}) in column {self.layout.names[index]!r}; fix the source, "
                        "or set missing: impute to fill it in",
                    )
                column.missing += 1
            elif index in declared:
                pass
            elif NUMBER.fullmatch(value):
                long = len(value) > SHORT_NUMBER or "e" in value or "E" in value
                if long and column.too_large is None and not number_in_range(value):
                    column.too_large = (line_no, value)
            else:
                column.texts += 1
                if column.first_text is None:
                    column.first_text = (line_no, value)

    def _count(self) -> None:
        """Each column's numbers (and a declared column's texts): the cells neither missing nor counted as text."""
        for index, column in self.columns.items():
            present = self.rows - column.missing
            if index in self.declared:
                column.texts = present
            else:
                column.numbers = present - column.texts

    def kind(self, index: int) -> str:
        """``numeric`` (every value a number), else ``categorical``; InvalidDatasetError for a column of numbers
        with a too-large number in it, or with a few non-numbers (typos)."""
        column = self.columns[index]
        if index in self.declared:
            return "categorical"
        if column.texts == 0:
            if column.too_large is not None:
                line, value = column.too_large
                _fail(self.uri, line, index + 1, self._too_large(index, value))
            return "numeric" if column.numbers else "categorical"
        if column.numbers and (column.texts == 1 or column.texts <= TYPO_SHARE * (column.numbers + column.texts)):
            line, value = column.first_text or (0, "")
            _fail(self.uri, line, index + 1, self._typo(index, line, value))
        return "categorical"

    def _too_large(self, index: int, value: str) -> str:
        name = self.layout.names[index]
        if math.isinf(float(value)):
            return f"{_shown(value)!r} is not a finite number (column {name!r})"
        return (
            f"{_shown(value)!r} in column {name!r} is beyond ±{MAX_MAGNITUDE:g}, the largest magnitude every "
            "estimator can train on (random forest reads float32); fix the value, or rescale the column"
        )

    def _typo(self, index: int, line: int, value: str) -> str:
        column = self.columns[index]
        name = self.layout.names[index]
        total = column.numbers + column.texts
        try:
            what = "is not a finite number" if not math.isfinite(float(value)) else "is not a number"
        except ValueError:
            what = "is not a number"
        message = (
            f"{_shown(value)!r} {what}, in column {name!r} where {column.numbers} of the {total} values are numbers: "
            f"a typo? Fix it; or, if the column is categorical, declare it in categorical_columns; or, if "
            f"{_shown(value)!r} means a missing value, add it to na_values"
        )
        if line == 1 and not self.layout.header.present:
            message += f" (is line 1 a header? set header: true; {self.layout.header.reason})"
        return message

    def _check_label_magnitude(self, label: LabelStats) -> None:
        """A regression target within ±MAX_MAGNITUDE, like every number in a feature: beyond it, squares overflow."""
        for value in (label.minimum, label.maximum):
            if value is not None and abs(value) > MAX_MAGNITUDE:
                _fail(
                    self.uri,
                    None,
                    None,
                    f"the label reaches {value:g}, beyond ±{MAX_MAGNITUDE:g}, the largest magnitude a regression "
                    "target can have (its errors are squared); rescale the label (for example to thousands or "
                    "millions of its unit)",
                )

    def finish(self, min_class_rows: int, size: int, sha256: str) -> DatasetStats:
        if self.rows == 0:
            _fail(self.uri, None, None, "the file has a header and no data rows; check the source URL")
        names = self.layout.names
        self._count()
        kinds = {names[i]: self.kind(i) for i in self.layout.features}
        if self.rows == 1:
            _fail(
                self.uri,
                self.last_line,
                None,
                "only one data row (or is it a header, and the file has no data rows?); a classifier needs rows of "
                "two or more classes",
            )
        label = self.tally.stats(self.rows, DISTINCT_CAP if self.capped else len(self.counts), self.capped)
        decision = decide_task(self.task, label)
        if decision.task == REGRESSION:
            check_regression_label(self.uri, label, self.rows, min_class_rows, self.target_transform)
            self._check_label_magnitude(label)
        else:
            if self.target_transform != DEFAULT_TARGET_TRANSFORM:
                _fail(
                    self.uri,
                    None,
                    None,
                    f"target_transform {self.target_transform} applies to a regression target, but the label is "
                    f"taken as classes ({decision.reason}); set task regression (--task regression) if it is a "
                    "quantity, or leave target_transform out",
                )
            self._check_classes(min_class_rows, label, regression_hint(decision, label))
        empty = [names[i] for i, column in self.columns.items() if not column.numbers + column.texts]
        if empty and len(empty) == len(self.layout.features):
            _fail(self.uri, None, None, f"every feature column is empty ({', '.join(empty)})")
        return DatasetStats(
            rows=self.rows,
            class_counts={} if decision.task == REGRESSION else dict(sorted(self.counts.items())),
            bytes=size,
            sha256=sha256,
            layout=self.layout,
            kinds=kinds,
            missing={names[i]: column.missing for i, column in self.columns.items() if column.missing},
            label_kind="number" if decision.task == REGRESSION else label_kind(list(self.counts)),
            label=label,
            task=decision.task,
            first_text={
                names[i]: self._why(i)
                for i, column in self.columns.items()
                if kinds[names[i]] == "categorical" and (i in self.declared or column.first_text is not None)
            },
        )

    def _check_classes(self, min_class_rows: int, label: LabelStats, hint: str) -> None:
        """The label as classes: counted (not beyond DISTINCT_CAP), two or more, each with ``min_class_rows`` rows."""
        if self.capped:
            line, value = label.first_non_number or (None, "")
            _fail(
                self.uri,
                line,
                self.layout.label + 1,
                f"the label {_shown(value)!r} is not a number, in a label column of more than {DISTINCT_CAP} distinct "
                "numbers: a typo in a regression target? Fix it, or set task regression",
            )
        if label_kind(list(self.counts)) == "integer":  # "01" and "1" are one class, as training reads them
            merged: dict[str, int] = {}
            for value, count in self.counts.items():
                merged[str(int(value))] = merged.get(str(int(value)), 0) + count
            self.counts = merged
        if len(self.counts) < 2:
            only = next(iter(self.counts))
            _fail(
                self.uri,
                None,
                None,
                f"only one class ({_shown(only)!r}) in {self.rows} rows; a classifier needs two or more",
            )
        check_class_rows(self.uri, self.counts, min_class_rows, hint)

    def _why(self, index: int) -> str:
        """Why a feature is categorical, for the model card."""
        if index in self.declared:
            return "declared in categorical_columns"
        line, value = self.columns[index].first_text or (0, "")
        return f"{_shown(value)!r} at line {line} is not a number"


def _shown(value: str, limit: int = 40) -> str:
    """A cell's value for a message: at most ``limit`` characters."""
    return value if len(value) <= limit else value[:limit] + "..."


def check_class_rows(uri: str, counts: dict[str, int], min_class_rows: int, hint: str = "") -> None:
    """InvalidDatasetError naming the smallest class when it has fewer than ``min_class_rows`` rows (``hint`` added)."""
    smallest = min(counts, key=lambda label: (counts[label], label))
    if counts[smallest] < min_class_rows:
        _fail(
            uri,
            None,
            None,
            f"class {smallest!r} has {counts[smallest]} rows, fewer than the {min_class_rows} folds of "
            "cross-validation; supply more rows, or lower cv_folds" + hint,
        )


def _fail(uri: str, line: int | None, column: int | None, message: str) -> NoReturn:
    where = uri
    if line is not None:
        where += f", line {line}"
    if column is not None:
        where += f", column {column}"
    raise InvalidDatasetError(f"invalid dataset at {where}: {message}")


def validate_dataset(
    chunks: Iterable[bytes],
    uri: str,
    description: DatasetDescription | None = None,
    min_class_rows: int = 1,
    *,
    task: str = AUTO,
    target_transform: str = DEFAULT_TARGET_TRANSFORM,
    watch: RowWatch | None = None,
) -> DatasetStats:
    """Validate a whole dataset given as an iterable of byte chunks, its label as ``task`` needs it (``watch``: see
    ``RowWatch``)."""
    return DatasetValidator(
        uri, description or DatasetDescription(), min_class_rows, task, target_transform, watch
    ).validate(chunks)


__all__ = [
    "MAX_MAGNITUDE",
    "RULES",
    "CsvRows",
    "DatasetStats",
    "DatasetValidator",
    "HeaderDecision",
    "RowWatch",
    "check_class_rows",
    "validate_dataset",
]
