"""The dataset's format, checked line by line while it streams (pure Python: no pandas here).

The expected file is the UCI Iris file's format: no header, one sample per line, four numeric
features and a class label, comma separated. Blank lines are accepted only at the end (the UCI
file ends with one), and so are CRLF line endings and a UTF-8 byte order mark.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from mlpipe.exceptions import InvalidDatasetError

IRIS_LABELS: tuple[str, ...] = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
N_FEATURES = 4
N_COLUMNS = N_FEATURES + 1
MAX_LINE_BYTES = 64 * 1024  # bounds memory on a body with no newlines at all
# A plain decimal number, as pandas' CSV reader parses it: Python's float() also takes "1_0", NaN,
# infinity and non-ASCII digits, which would pass here and then fail the training.
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


@dataclass(frozen=True)
class DatasetStats:
    """What a valid dataset held: rows, per-class counts (in label order), size and sha256."""

    rows: int
    class_counts: dict[str, int]
    bytes: int
    sha256: str


@dataclass
class DatasetValidator:
    """Validate a CSV fed in arbitrary chunks; ``finish()`` returns its stats or raises InvalidDatasetError."""

    uri: str
    labels: Sequence[str] = IRIS_LABELS
    min_class_rows: int = 1  # the run's cv_folds: stratified k-fold needs k rows of every class
    _pending: bytes = b""
    _line_no: int = 0
    _rows: int = 0
    _blank_since: int | None = None
    _size: int = 0
    _counts: dict[str, int] = field(default_factory=dict)
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def feed(self, chunk: bytes) -> None:
        """Consume the next chunk of the file; complete lines are checked at once."""
        self._size += len(chunk)
        self._digest.update(chunk)
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        for line in lines:
            self._check_line(line)
        if len(self._pending) > MAX_LINE_BYTES:
            self._fail(
                self._line_no + 1,
                None,
                f"a line longer than {MAX_LINE_BYTES} bytes; this is not the expected CSV (is the source URL right?)",
            )

    def finish(self) -> DatasetStats:
        """Check the last line and the whole file; return the stats of a valid dataset."""
        if self._pending:
            self._check_line(self._pending)
            self._pending = b""
        if self._rows == 0:
            self._fail(None, None, "the dataset is empty (no data rows); check the source URL")
        present = [label for label in self.labels if self._counts.get(label)]
        if len(present) < 2:
            self._fail(
                None,
                None,
                f"only one class ({present[0]}) in {self._rows} rows; a classifier needs at least two classes",
            )
        smallest = min(present, key=lambda label: self._counts[label])
        if self._counts[smallest] < self.min_class_rows:
            self._fail(
                None,
                None,
                f"class {smallest!r} has {self._counts[smallest]} rows, fewer than the {self.min_class_rows} folds of "
                "cross-validation; supply more rows or lower cv_folds",
            )
        return DatasetStats(
            rows=self._rows,
            class_counts={label: self._counts.get(label, 0) for label in self.labels},
            bytes=self._size,
            sha256=self._digest.hexdigest(),
        )

    def _check_line(self, raw: bytes) -> None:
        self._line_no += 1
        line_no = self._line_no
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._fail(line_no, None, f"binary data, not UTF-8 text (byte {exc.start + 1}); check the source URL")
        if line_no == 1:
            text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark
        if "\x00" in text:
            self._fail(line_no, None, "binary data (a NUL byte), not CSV text; check the source URL")
        if not text.strip():
            if self._blank_since is None:
                self._blank_since = line_no
            return
        if self._blank_since is not None:
            self._fail(
                self._blank_since,
                None,
                f"blank line inside the data (data continues at line {line_no}); "
                "blank lines are only allowed at the end",
            )
        if line_no == 1 and text.lstrip().startswith("<"):
            self._fail(line_no, 1, "this looks like an HTML page, not CSV; check the source URL")
        fields = text.split(",")
        if len(fields) != N_COLUMNS:
            self._fail(
                line_no,
                None,
                f"expected {N_COLUMNS} comma-separated columns (4 features and a label), found {len(fields)}",
            )
        for column, value in enumerate(fields[:N_FEATURES], start=1):
            self._check_feature(line_no, column, value.strip())
        label = fields[N_FEATURES].strip()
        if label not in self.labels:
            shown = label if len(label) <= 40 else label[:40] + "..."
            self._fail(line_no, N_COLUMNS, f"unknown label {shown!r}; expected one of {', '.join(self.labels)}")
        self._counts[label] = self._counts.get(label, 0) + 1
        self._rows += 1

    def _check_feature(self, line_no: int, column: int, value: str) -> None:
        if not value:
            self._fail(line_no, column, "missing feature value")
        if NUMBER.fullmatch(value):
            return
        shown = value if len(value) <= 40 else value[:40] + "..."
        try:
            number = float(value)  # only to tell NaN and infinity apart from text
        except ValueError:
            number = 0.0
        if not math.isfinite(number):
            self._fail(line_no, column, f"{shown!r} is not a finite number (NaN and infinity are not allowed)")
        hint = " (the file must not have a header row)" if line_no == 1 else ""
        self._fail(line_no, column, f"{shown!r} is not a number{hint}")

    def _fail(self, line: int | None, column: int | None, message: str) -> NoReturn:
        where = self.uri
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        raise InvalidDatasetError(f"invalid dataset at {where}: {message}")


def validate_dataset(
    chunks: Iterable[bytes], uri: str, labels: Sequence[str] = IRIS_LABELS, min_class_rows: int = 1
) -> DatasetStats:
    """Validate a whole dataset given as an iterable of byte chunks."""
    validator = DatasetValidator(uri, labels, min_class_rows)
    for chunk in chunks:
        validator.feed(chunk)
    return validator.finish()
