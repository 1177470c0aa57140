"""The dataset, checked row by row while it streams, against its description (pure Python: no pandas here).

The file is read with the standard library's ``csv`` module (RFC 4180: quoted fields may hold the
delimiter, quotes and newlines), one row at a time, so memory stays flat in the file's size. The
first rows (up to ``SAMPLE_ROWS``) are held back to decide whether the first one is a header
(``description.decide_header``); after that each row is checked as it arrives:

- the same number of columns as the first row;
- a label in every row (and in ``labels``, when the description has an allow-list);
- no empty or NA feature cell unless ``missing: impute``; no infinite number;
- at least two classes, each with at least ``min_class_rows`` rows (the cross-validation's folds).

Blank lines are accepted only at the end (the UCI files end with one), and so are CRLF line
endings and a UTF-8 byte order mark. Each column's kind (numeric when every value is a number,
else categorical) is recorded in the result for training to read the file with.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from mlpipe.description import (
    NUMBER,
    ColumnLayout,
    DatasetDescription,
    HeaderDecision,
    decide_header,
    label_kind,
)
from mlpipe.exceptions import InvalidDatasetError

MAX_LINE_BYTES = 1024 * 1024  # bounds memory on a body with no newlines at all
SAMPLE_ROWS = 200  # rows looked at to decide whether the first one is a header
_FIELD_LIMIT = MAX_LINE_BYTES


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
                "header": {"present": self.layout.header.present, "reason": self.layout.header.reason},
            },
            "kinds": self.kinds,
            "missing": self.missing,
            "label_kind": self.label_kind,
            "first_text": self.first_text,
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
            ),
            kinds={str(k): str(v) for k, v in data["kinds"].items()},
            missing={str(k): int(v) for k, v in data["missing"].items()},
            label_kind=str(data["label_kind"]),
            first_text={str(k): str(v) for k, v in data["first_text"].items()},
        )


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
class DatasetValidator:
    """Validate a CSV given as byte chunks against ``description``; ``validate()`` returns its stats."""

    uri: str
    description: DatasetDescription = field(default_factory=DatasetDescription)
    min_class_rows: int = 1  # the run's cv_folds: stratified k-fold needs k rows of every class

    def validate(self, chunks: Iterable[bytes]) -> DatasetStats:
        """Read every row; raise InvalidDatasetError at the first problem (line and column named)."""
        lines = _Lines(self.uri, chunks)
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
        reader = csv.reader(
            lines, delimiter=self.description.delimiter, quotechar='"', skipinitialspace=True, strict=True
        )
        rows = self._rows(reader, lines)
        try:
            first_line, first = next(rows)
        except StopIteration:
            _fail(self.uri, None, None, "the dataset is empty (no data rows); check the source URL")
        held: list[tuple[int, list[str]]] = []
        for item in rows:
            held.append(item)
            if len(held) >= SAMPLE_ROWS:
                break
        header = decide_header(self.description, first, [row for _, row in held])
        layout = ColumnLayout.resolve(self.description, first, header, uri=self.uri)
        check = _RowCheck(self.uri, self.description, layout)
        if not header.present:
            check.row(first_line, first)
        for line_no, row in held:
            check.row(line_no, row)
        for line_no, row in rows:
            check.row(line_no, row)
        return check.finish(self.min_class_rows, lines.size, lines.digest.hexdigest())

    def _rows(self, reader: Any, lines: _Lines) -> Iterator[tuple[int, list[str]]]:
        """Non-blank rows with the line they start on; blank lines only at the end."""
        blank_since: int | None = None
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                _fail(self.uri, lines.line_no, None, f"malformed CSV ({exc}); quote fields that hold quotes")
            if not row or (len(row) == 1 and not row[0].strip()):
                if blank_since is None:
                    blank_since = start
                start = lines.line_no + 1
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
            start = lines.line_no + 1


@dataclass
class _RowCheck:
    uri: str
    description: DatasetDescription
    layout: ColumnLayout
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    numeric: dict[int, bool] = field(default_factory=dict)
    missing: dict[int, int] = field(default_factory=dict)
    first_text: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.na = set(self.description.na_values)
        self.allowed = set(self.description.labels) if self.description.labels is not None else None
        self.impute = self.description.missing == "impute"
        self.numeric = dict.fromkeys(self.layout.features, True)
        self.seen_value = dict.fromkeys(self.layout.features, False)
        self.missing = dict.fromkeys(self.layout.features, 0)
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
        label = row[self.layout.label].strip()
        if label in self.na:
            _fail(
                self.uri,
                line_no,
                self.layout.label + 1,
                f"missing label in the label column {self.layout.label_name!r}",
            )
        if self.allowed is not None and label not in self.allowed:
            shown = label if len(label) <= 40 else label[:40] + "..."
            _fail(
                self.uri,
                line_no,
                self.layout.label + 1,
                f"unknown label {shown!r}; the description allows only {', '.join(sorted(self.allowed))}",
            )
        for index in self.layout.features:
            value = row[index].strip()
            if value in self.na:
                if not self.impute:
                    _fail(
                        self.uri,
                        line_no,
                        index + 1,
                        f"missing value ({value or 'empty'}) in column {self.layout.names[index]!r}; fix the source, "
                        "or set missing: impute to fill it in",
                    )
                self.missing[index] += 1
                continue
            self.seen_value[index] = True
            exponent = "e" in value or "E" in value  # 1e999 has a number's shape, but is not a finite number
            if self.numeric[index] and exponent and NUMBER.fullmatch(value) and math.isinf(float(value)):
                _fail(self.uri, line_no, index + 1, f"{value!r} is not a finite number")
            if self.numeric[index] and not NUMBER.fullmatch(value):
                try:
                    number = float(value)  # only to tell infinity apart from text
                except ValueError:
                    number = 0.0
                if math.isinf(number):
                    _fail(self.uri, line_no, index + 1, f"{value!r} is not a finite number")
                self.numeric[index] = False
                shown = value if len(value) <= 40 else value[:40] + "..."
                self.first_text[index] = f"{shown!r} at line {line_no} is not a number"
        self.counts[label] = self.counts.get(label, 0) + 1
        self.rows += 1

    def finish(self, min_class_rows: int, size: int, sha256: str) -> DatasetStats:
        if self.rows == 0:
            _fail(self.uri, None, None, "the dataset has a header but no data rows; check the source URL")
        if label_kind(list(self.counts)) == "integer":  # "01" and "1" are one class, as training reads them
            merged: dict[str, int] = {}
            for label, count in self.counts.items():
                merged[str(int(label))] = merged.get(str(int(label)), 0) + count
            self.counts = merged
        if len(self.counts) < 2:
            only = next(iter(self.counts))
            _fail(
                self.uri, None, None, f"only one class ({only!r}) in {self.rows} rows; a classifier needs two or more"
            )
        check_class_rows(self.uri, self.counts, min_class_rows)
        names = self.layout.names
        empty = [names[i] for i in self.layout.features if not self.seen_value[i]]
        if empty and len(empty) == len(self.layout.features):
            _fail(self.uri, None, None, f"every feature column is empty ({', '.join(empty)})")
        return DatasetStats(
            rows=self.rows,
            class_counts=dict(sorted(self.counts.items())),
            bytes=size,
            sha256=sha256,
            layout=self.layout,
            kinds={
                names[i]: "numeric" if self.numeric[i] and self.seen_value[i] else "categorical"
                for i in self.layout.features
            },
            missing={names[i]: n for i, n in self.missing.items() if n},
            label_kind=label_kind(list(self.counts)),
            first_text={names[i]: text for i, text in self.first_text.items()},
        )


def check_class_rows(uri: str, counts: dict[str, int], min_class_rows: int) -> None:
    """InvalidDatasetError naming the smallest class when it has fewer than ``min_class_rows`` rows."""
    smallest = min(counts, key=lambda label: (counts[label], label))
    if counts[smallest] < min_class_rows:
        _fail(
            uri,
            None,
            None,
            f"class {smallest!r} has {counts[smallest]} rows, fewer than the {min_class_rows} folds of "
            "cross-validation; supply more rows, or lower cv_folds",
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
) -> DatasetStats:
    """Validate a whole dataset given as an iterable of byte chunks."""
    return DatasetValidator(uri, description or DatasetDescription(), min_class_rows).validate(chunks)


__all__ = ["DatasetStats", "DatasetValidator", "HeaderDecision", "check_class_rows", "validate_dataset"]
