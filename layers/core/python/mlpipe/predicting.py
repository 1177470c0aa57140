"""Predict with a published model (the champion, or one named by URI): read a CSV the way the model's dataset was read.

The input file is read by the model's own dataset description, from its card: the delimiter, the
header (a headerless training file's columns are ``column_0``, ``column_1``, ...), the missing
values and each feature's kind. The label column may be there: it is then not used to predict,
and the accuracy on it is returned (a regressor's: RMSE, MAE and R², ``regression_metrics``; a
regressor predicts numbers and has no ``predict_proba``: ``NO_PROBABILITIES``). Columns the model
does not know are ignored; a feature column
that is missing is an ``InvalidDatasetError`` naming it, the header read and, when the file seems
separated by another delimiter, the model's. The rows are read as the validator reads them
(``mlpipe.dataset.CsvRows``: UTF-8, RFC 4180, lines up to 1 MiB), and numbers are held to the
same range (``MAX_MAGNITUDE``): whatever the file holds, an unreadable cell is an
``InvalidDatasetError`` naming its line and column, never a raw exception.

Used by ``pipeline predict``, never by the Lambda handlers: it imports pandas and scikit-learn
(through the unpickled model), lazily.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mlpipe.dataset import CsvRows
from mlpipe.description import (
    DELIMITERS,
    MAX_MAGNITUDE,
    NUMBER,
    excel_sep_line,
    excel_sep_message,
    is_int64,
    number_in_range,
    shown_names,
)
from mlpipe.exceptions import InvalidDatasetError
from mlpipe.loading import load_champion_checked, load_model
from mlpipe.storage import CHUNK_SIZE, Store

NO_PROBABILITIES = "the model is a regressor: it predicts numbers and has no predict_proba (no class probabilities)"


@dataclass(frozen=True)
class Predictions:
    """One prediction per input row; the probabilities (columns in ``classes`` order) when the model has them.

    For a regressor (``task`` regression) the predictions are numbers, ``probabilities`` is None (``NO_PROBABILITIES``)
    and ``metrics`` holds RMSE, MAE and R² on the label column when the file has it.
    """

    model_uri: str
    classes: list[Any]
    predictions: list[Any]
    probabilities: list[list[float]] | None
    accuracy: float | None
    label_column: str
    labelled_rows: int
    task: str = "classification"
    metrics: dict[str, float | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form: ``{"model_uri", "predictions", "probabilities", "accuracy"}`` (and the classes);
        for a regressor ``{"model_uri", "task", "predictions", "probabilities": null, "note", "metrics"}``."""
        if self.task == "regression":
            return {
                "model_uri": self.model_uri,
                "task": self.task,
                "predictions": self.predictions,
                "probabilities": None,
                "note": NO_PROBABILITIES,
                "metrics": self.metrics,
            }
        return {
            "model_uri": self.model_uri,
            "classes": self.classes,
            "predictions": self.predictions,
            "probabilities": self.probabilities,
            "accuracy": self.accuracy,
        }

    def write_csv(self, handle: TextIO) -> None:
        """A CSV with a ``prediction`` column and, when the model has probabilities, one ``proba_<label>`` per class."""
        writer = csv.writer(handle, lineterminator="\n")
        header = ["prediction"]
        if self.probabilities is not None:
            header += [f"proba_{label}" for label in self.classes]
        writer.writerow(header)
        for index, prediction in enumerate(self.predictions):
            row: list[Any] = [prediction]
            if self.probabilities is not None:
                row += [repr(p) for p in self.probabilities[index]]
            writer.writerow(row)


def load_for_prediction(
    *, model_uri: str | None = None, publish_uri: str | None = None, store: Store
) -> tuple[Any, dict[str, Any], str]:
    """``(model, card, model_uri)``: the model at ``model_uri`` (``load_model``), or else the champion under
    ``publish_uri`` (``load_champion``), with their checks (sha256, scikit-learn version), all made before unpickling.

    The champion's manifest is read once and its model's bytes once (``load_champion_checked``), so
    the model returned is the one that manifest names, even when the champion changes meanwhile.
    """
    if model_uri is not None:
        model, card = load_model(model_uri, store=store)
        return model, card, store.target(model_uri).uri
    if publish_uri is None:
        raise ValueError("give model_uri or publish_uri")
    model, card, manifest = load_champion_checked(publish_uri, store=store)
    return model, card, str(manifest["model_uri"])


@dataclass(frozen=True)
class InputLayout:
    """How a model's input file is read, from the model's card: its columns, their kinds, header and missing values."""

    features: list[str]
    label: str
    kinds: dict[str, str]  # a feature not named here is numeric (cards without kinds)
    trained_columns: list[str]  # the training file's columns, in its order
    has_header: bool
    na: frozenset[str]
    reject_missing: bool
    integer_labels: bool
    delimiter: str

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> InputLayout:
        """The layout the card describes (cards without a ``resolved`` section: the input's columns, all numeric)."""
        dataset = card.get("dataset") or {}
        description = dataset.get("description") or {}
        resolved = dataset.get("resolved") or {}
        features: list[str] = list((card.get("input") or {}).get("columns") or resolved.get("feature_columns") or [])
        label = str(resolved.get("label_column") or (card.get("input") or {}).get("label_column"))
        return cls(
            features=features,
            label=label,
            kinds=resolved.get("kinds") or {},
            trained_columns=list(resolved.get("columns") or [*features, label]),
            has_header=bool((resolved.get("header") or {}).get("present")),
            na=frozenset(str(v).strip() for v in description.get("na_values") or []),
            reject_missing=description.get("missing", "reject") == "reject",
            integer_labels=resolved.get("label_kind") == "integer",
            delimiter=str(description.get("delimiter") or ","),
        )


def read_input(path: Path, card: dict[str, Any]) -> tuple[Any, list[Any] | None]:
    """The model's input columns of the CSV at ``path`` as a DataFrame, and the labels when the label column is there.

    Raises InvalidDatasetError (a missing feature column, a row of the wrong width, a value that is
    not a number in a numeric column, a missing value where the model was trained with
    ``missing: reject``), naming the line and column.
    """
    import numpy as np
    import pandas as pd

    layout = InputLayout.from_card(card)
    where = str(path)
    with path.open("rb") as handle:
        reader = CsvRows(where, iter(lambda: handle.read(CHUNK_SIZE), b""), layout.delimiter)
        rows: list[tuple[int, list[str]]] = [(line, row) for line, row in reader if row]
    if rows and rows[0][0] == 1 and (named := excel_sep_line(rows[0][1], layout.delimiter)) is not None:
        raise InvalidDatasetError(f"{where}, line 1: {excel_sep_message(named, layout.delimiter)}")
    names, rows = input_columns(rows, layout, where)
    columns, labels = parse_rows(rows, names, layout, where)
    # One block per kind, not a Series per column: 40,000 columns take a second, not twenty.
    numeric = [name for name in layout.features if layout.kinds.get(name, "numeric") == "numeric"]
    text = [name for name in layout.features if layout.kinds.get(name, "numeric") != "numeric"]
    height = len(rows)
    blocks = [
        pd.DataFrame(
            np.array([columns[n] for n in numeric], dtype="float64").reshape(len(numeric), height).T, columns=numeric
        ),
        pd.DataFrame(
            np.array([columns[n] for n in text], dtype=object).reshape(len(text), height).T, columns=text, dtype=object
        ),
    ]
    frame = pd.concat(blocks, axis=1)[layout.features]
    return frame, labels


def input_columns(
    rows: list[tuple[int, list[str]]], layout: InputLayout, where: str
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The file's column names (its header, or the training file's columns) and its data rows.

    Raises InvalidDatasetError when a file without a header has neither the training file's width
    nor that width less the label, or when a feature column of the model is not in the file.
    """
    features, label, trained_columns = layout.features, layout.label, layout.trained_columns
    if layout.has_header:
        if not rows:
            raise InvalidDatasetError(f"{where} is empty; the model expects a header with: {shown_names(features)}")
        header = rows[0][1]
        names = [cell.strip() for cell in header]
        rows = rows[1:]
    else:
        header = rows[0][1] if rows else []
        width = len(header) if rows else len(features)
        if width == len(trained_columns):
            names = trained_columns
        elif width == len(trained_columns) - 1 and label in trained_columns:
            names = [c for c in trained_columns if c != label]  # the label column left out
        else:
            raise InvalidDatasetError(
                f"{where}, line 1: found {width} columns; the model was trained on a file without a header of "
                f"{len(trained_columns)} columns ({shown_names(trained_columns)}, {label} the label): give all of "
                f"them, or all but the label" + _delimiter_hint(header, layout.delimiter)
            )
    present = set(names)
    missing = [name for name in features if name not in present]
    if missing:
        if len(missing) == len(features):
            what = f"none of the model's feature columns ({shown_names([repr(m) for m in missing])}) is in the file"
        else:
            what = (
                f"the model's feature column(s) {shown_names([repr(m) for m in missing])} are not in the file; it "
                f"expects: {shown_names(features)}" + (f" (and optionally the label column {label!r})" if label else "")
            )
        read = layout.delimiter.join(header)
        raise InvalidDatasetError(
            f"{where}, line 1: {what}. The header read with delimiter {layout.delimiter!r} has {len(names)} "
            f"column(s): {shown_names(names) if len(names) > 1 else repr(_shown(read, 200))}"
            + _delimiter_hint(header, layout.delimiter)
        )
    return names, rows


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A sentence for a file that seems separated by another delimiter than the model's, else ``""``."""
    text = delimiter.join(header)
    others = [d for d in dict.fromkeys(DELIMITERS.values()) if d != delimiter and d in text]
    if len(header) > 1 or not others:
        return ""
    return (
        f". The model was trained on a file with delimiter {delimiter!r}, and this line seems separated by "
        f"{others[0]!r}: write the file with {delimiter!r} as its delimiter"
    )


def _shown(value: str, limit: int = 40) -> str:
    """A cell's value for a message: at most ``limit`` characters."""
    return value if len(value) <= limit else value[:limit] + "..."


def parse_rows(
    rows: list[tuple[int, list[str]]], names: list[str], layout: InputLayout, where: str
) -> tuple[dict[str, list[Any]], list[Any] | None]:
    """Each feature column's values (NaN when missing, a float when numeric, else the text), and the labels
    (None for a missing one) when the label column is among ``names``.

    Raises InvalidDatasetError for a row that is not ``names`` wide, a missing value where the model
    was trained with ``missing: reject``, or text in a numeric column, naming the line and column.
    """
    import numpy as np

    position = {name: index for index, name in enumerate(names)}
    columns: dict[str, list[Any]] = {name: [] for name in layout.features}
    labels: list[Any] | None = [] if layout.label in position else None
    for line, row in rows:
        if len(row) != len(names):
            raise InvalidDatasetError(f"{where}, line {line}: found {len(row)} columns, the header has {len(names)}")
        for name in layout.features:
            cell = row[position[name]].strip()
            if cell in layout.na:
                if layout.reject_missing:
                    raise InvalidDatasetError(
                        f"{where}, line {line}, column {name!r}: the value is missing ({cell!r}), and the model was "
                        "trained with missing: reject (it cannot impute); fill it in"
                    )
                columns[name].append(np.nan)
            elif layout.kinds.get(name, "numeric") == "numeric":
                if not NUMBER.fullmatch(cell):
                    raise InvalidDatasetError(
                        f"{where}, line {line}, column {name!r}: {_shown(cell)!r} is not a number, and the column "
                        "is numeric"
                    )
                if not number_in_range(cell):
                    raise InvalidDatasetError(
                        f"{where}, line {line}, column {name!r}: {_shown(cell)!r} is beyond ±{MAX_MAGNITUDE:g}, "
                        "the range the model was trained in; fix the value"
                    )
                columns[name].append(float(cell))
            else:
                columns[name].append(cell)
        if labels is not None:
            cell = row[position[layout.label]].strip()
            labels.append(None if cell in layout.na else _label(cell, layout.integer_labels))
    return columns, labels


def _label(cell: str, integer_labels: bool) -> Any:
    """A label cell's value: an int for a model with integer labels when the cell is one (within int64, as in
    training), else the text."""
    return int(cell) if integer_labels and is_int64(cell) else cell


def predict_file(
    path: Path, *, model_uri: str | None = None, publish_uri: str | None = None, store: Store
) -> Predictions:
    """Load the model (``model_uri``) or the champion (``publish_uri``) and predict every row of the CSV at ``path``.

    Raises NoChampionError (no champion yet), IntegrityError or IncompatibleModelError (the model's checks, made
    before it is unpickled) and InvalidDatasetError (the file).
    """
    model, card, uri = load_for_prediction(model_uri=model_uri, publish_uri=publish_uri, store=store)
    frame, labels = read_input(path, card)
    label = str(((card.get("dataset") or {}).get("resolved") or {}).get("label_column"))
    if card.get("task") == "regression":
        return _predict_numbers(model, frame, labels, uri, label, str(path))
    if len(frame) == 0:
        return Predictions(uri, list(card.get("classes") or []), [], None, None, label, 0)
    predicted = [_plain(value) for value in model.predict(frame).tolist()]
    classes = [_plain(value) for value in getattr(model, "classes_", card.get("classes") or [])]
    probabilities = None
    # hasattr(model, "predict_proba") is true for any Pipeline: the card says whether its estimator has it, and
    # cards written before the fix for SVC's "deprecated" default said yes wrongly, so the final step is asked too.
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if (card.get("input") or {}).get("predict_proba") and hasattr(final, "predict_proba"):
        probabilities = [[float(p) for p in row] for row in model.predict_proba(frame).tolist()]
    accuracy = None
    pairs = [(p, t) for p, t in zip(predicted, labels or [], strict=False) if t is not None]
    if labels is not None and pairs:
        accuracy = sum(p == t for p, t in pairs) / len(pairs)
    return Predictions(uri, classes, predicted, probabilities, accuracy, label, len(pairs))


def _predict_numbers(model: Any, frame: Any, labels: list[Any] | None, uri: str, label: str, where: str) -> Predictions:
    """A regressor's predictions (floats), and RMSE, MAE and R² on the labelled rows (InvalidDatasetError: a label
    that is not a finite number)."""
    predicted = [float(value) for value in model.predict(frame).tolist()] if len(frame) else []
    pairs: list[tuple[float, float]] = []
    for index, (guess, truth) in enumerate(zip(predicted, labels or [], strict=False)):
        if truth is None:
            continue
        try:
            value = float(truth)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InvalidDatasetError(
                f"{where}: the label {truth!r} in column {label!r} (data row {index + 1}) is not a finite number; "
                "the model is a regressor: fix the value, or leave the label column out"
            )
        pairs.append((guess, value))
    return Predictions(
        uri, [], predicted, None, None, label, len(pairs), task="regression", metrics=regression_metrics(pairs)
    )


def regression_metrics(pairs: list[tuple[float, float]]) -> dict[str, float | None] | None:
    """RMSE, MAE and R² of ``(predicted, actual)`` pairs (R² null when the actual values do not vary); None if none."""
    if not pairs:
        return None
    count = len(pairs)
    errors = [truth - guess for guess, truth in pairs]
    mean = sum(truth for _, truth in pairs) / count
    total = sum((truth - mean) ** 2 for _, truth in pairs)
    squared = sum(e * e for e in errors)
    return {
        "rmse": (squared / count) ** 0.5,
        "mae": sum(abs(e) for e in errors) / count,
        "r2": 1 - squared / total if total > 0 else None,
        "rows": count,
    }


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (JSON and CSV need ints and strings)."""
    return value.item() if hasattr(value, "item") else value
