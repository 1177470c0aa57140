"""What the download accepts must train, and what it refuses it names (issue "Trust", the data).

The validator's rules tested here: numbers within ``MAX_MAGNITUDE`` in numeric columns; integer
labels beyond int64 read as text; a column of numbers with a few non-numbers (typos) is an error
unless ``categorical_columns`` declares it; a header with no data rows and Excel's ``sep=`` line
are named as such; the description's checks are linear in the number of columns.
"""

from __future__ import annotations

import io
import time

import pytest

from mlpipe import dataset, training
from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import InvalidDatasetError, InvalidRequestError
from tests.conftest import SAMPLE

IRIS = SAMPLE.read_bytes()
URI = "s3://bucket/runs/2026-11-25/dataset.csv"
IRIS_LINES = IRIS.decode().splitlines()


def iris_with(line: int, column: int, value: str) -> bytes:
    """The sample with the cell at 1-based ``line`` and ``column`` replaced by ``value``."""
    lines = list(IRIS_LINES)
    cells = lines[line - 1].split(",")
    cells[column - 1] = value
    lines[line - 1] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def describe(**fields: object) -> DatasetDescription:
    return DatasetDescription.from_value(fields)


# --- 1. numbers that would break training ---------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "1" * 400,  # a 400-digit integer: float64 infinity
        "1e308",  # finite, but its square overflows when scaled
        "-1e308",
        "1.7976931348623157e308",
        "1e39",
        "-2e38",
        "123456789012345678901234567890123456789012",  # 42 digits, no exponent
        "0.00001e44",
        "+99999e35",
        "1e999",
        "-1E400",
    ],
)
def test_a_number_beyond_the_trainable_range_is_refused_with_line_column_and_value(value: str) -> None:
    body = iris_with(7, 2, value)
    with pytest.raises(InvalidDatasetError, match=r"line 7, column 2: ") as caught:
        validate_dataset([body], URI)
    message = str(caught.value)
    assert value[:40] in message
    assert "1e+38" in message or "finite" in message


@pytest.mark.parametrize("value", ["1e38", "-1e38", "99999999999999999999", "1e-400", "-0.0", "0e999999"])
def test_numbers_within_the_range_are_accepted(value: str) -> None:
    stats = validate_dataset([iris_with(7, 2, value)], URI)
    assert stats.kinds["column_1"] == "numeric"


def test_the_bound_is_what_every_estimator_can_train_on() -> None:
    assert dataset.MAX_MAGNITUDE == 1e38
    assert dataset.MAX_MAGNITUDE < 3.4028234663852886e38  # random forest's trees read features as float32


def test_a_big_number_in_a_text_column_is_just_a_category() -> None:
    body = b"code,x,label\nabc,1,a\n1e999,2,b\ndef,3,a\nghi,4,b\n"
    stats = validate_dataset([body], URI)
    assert stats.kinds == {"code": "categorical", "x": "numeric"}


@pytest.mark.parametrize(
    "big",
    ["9223372036854775808", "-9223372036854775809", "99999999999999999999999999", "7" * 5000],
)
def test_integer_labels_beyond_int64_are_read_as_text(big: str) -> None:
    lines = ["a,b,label"] + [f"{i % 7},{i % 3},{label}" for i, label in enumerate(["1", "2", big] * 4)]
    body = ("\n".join(lines) + "\n").encode()
    stats = validate_dataset([body], URI)
    assert stats.label_kind == "string"
    assert stats.class_counts == {"1": 4, "2": 4, big: 4}
    _, labels = training.read_dataset(io.BytesIO(body), URI, stats, DatasetDescription())
    assert sorted(set(labels.tolist())) == sorted(["1", "2", big])


def test_integer_labels_within_int64_stay_integers() -> None:
    body = b"a,label\n1,9223372036854775807\n2,-9223372036854775808\n3,9223372036854775807\n4,-9223372036854775808\n"
    stats = validate_dataset([body], URI)
    assert stats.label_kind == "integer"
    _, labels = training.read_dataset(io.BytesIO(body), URI, stats, DatasetDescription())
    assert labels.tolist() == [2**63 - 1, -(2**63), 2**63 - 1, -(2**63)]


# --- 2. a typo does not make a column categorical ---------------------------------------------------
def test_one_word_in_a_column_of_numbers_is_refused_naming_it() -> None:
    with pytest.raises(InvalidDatasetError) as caught:
        validate_dataset([iris_with(42, 3, "abc")], URI)
    message = str(caught.value)
    assert "line 42, column 3" in message
    assert "'abc'" in message
    assert "column_2" in message
    assert "categorical_columns" in message


@pytest.mark.parametrize("typo", ["abc", "1,5", "5.1.2", "NaN?", "inf", "-", "n/a "])
def test_any_non_number_among_numbers_is_a_typo(typo: str) -> None:
    body = iris_with(100, 1, f'"{typo}"')
    with pytest.raises(InvalidDatasetError, match=r"line 100, column 1: "):
        validate_dataset([body], URI)


def test_a_few_typos_in_a_long_column_are_refused_and_many_make_it_categorical() -> None:
    def body(words: int) -> bytes:
        lines = ["size,x,label"]
        for i in range(200):
            size = f"w{i}" if i % 200 < words else str(i)
            lines.append(f"{size},{i % 5},{'ab'[i % 2]}")
        return ("\n".join(lines) + "\n").encode()

    for words in (1, 2, 10):  # 10 of 200 is 5 %: still a column of numbers with typos
        with pytest.raises(InvalidDatasetError, match=r"line 2, column 1: 'w0'"):
            validate_dataset([body(words)], URI)
    stats = validate_dataset([body(11)], URI)  # 11 of 200: more than 5 % text, a categorical column
    assert stats.kinds["size"] == "categorical"


def test_a_header_read_as_data_is_named_with_a_hint() -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 1, column 1: .*header: true"):
        validate_dataset([b"a,b,class\n1,2,x\n3,4,y\n1,1,x\n2,2,y\n"], URI, describe(header=False))


@pytest.mark.parametrize("column", [2, "petal", -3])
def test_a_declared_categorical_column_may_hold_anything(column: int | str) -> None:
    header = b"sepal,width,petal,pw,class\n"
    body = header + iris_with(42, 3, "abc")
    description = describe(categorical_columns=[column], header=True)
    stats = validate_dataset([body], URI, description)
    assert stats.kinds == {"sepal": "numeric", "width": "numeric", "petal": "categorical", "pw": "numeric"}
    assert "categorical_columns" in stats.first_text["petal"]


def test_a_declared_categorical_column_of_numbers_is_categorical() -> None:
    stats = validate_dataset([IRIS], URI, describe(categorical_columns=[0]))
    assert stats.kinds["column_0"] == "categorical"
    features, _ = training.read_dataset(io.BytesIO(IRIS), URI, stats, describe(categorical_columns=[0]))
    assert features["column_0"].tolist()[:2] == ["5.1", "4.9"]


def test_without_categorical_columns_the_description_is_what_it_was() -> None:
    before = {
        "header": "auto",
        "label_column": -1,
        "feature_columns": None,
        "drop_columns": [],
        "delimiter": ",",
        "missing": "reject",
        "labels": None,
        "na_values": ["", "?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "#N/A", "<NA>"],
    }
    assert DatasetDescription.from_value({}).to_dict() == before
    assert DatasetDescription.from_value({"categorical_columns": []}).to_dict() == before
    assert DatasetDescription.from_value({"categorical_columns": None}).to_dict() == before
    assert describe(categorical_columns=["a", 2]).to_dict() == before | {"categorical_columns": ["a", 2]}
    again = DatasetDescription.from_value(describe(categorical_columns=["a", 2]).to_dict())
    assert again.categorical_columns == ("a", 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"categorical_columns": "a"}, None),  # a single name is a list of one, as in feature_columns
        ({"categorical_columns": [True]}, r"categorical_columns\[0\] must be a column name"),
        ({"categorical_columns": [1.5]}, r"categorical_columns\[0\] must be a column name"),
        ({"categorical_columns": [" "]}, r"categorical_columns\[0\] must not be an empty name"),
        ({"categorical_columns": {"a": 1}}, r"categorical_columns must be a list"),
        ({"categorical_columns": ["a", "a"]}, r"categorical_columns names 'a' more than once"),
        ({"categorical_columns": ["label"], "label_column": "label"}, r"label column 'label' is also in categorical"),
        ({"categorical_columns": [-1]}, r"label column -1 is also in categorical_columns"),
        ({"categorical_columns": ["a"], "feature_columns": ["b"]}, r"'a' is not in feature_columns"),
        ({"categorical_columns": ["a"], "drop_columns": ["a"]}, r"'a' is also in drop_columns"),
    ],
)
def test_categorical_columns_is_checked_like_feature_columns(fields: dict[str, object], message: str | None) -> None:
    if message is None:
        assert DatasetDescription.from_value(fields).categorical_columns == ("a",)
        return
    with pytest.raises(InvalidRequestError, match=message):
        DatasetDescription.from_value(fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"categorical_columns": ["nope"], "header": True}, r"categorical_columns entry 'nope' is not a column"),
        ({"categorical_columns": [9]}, r"categorical_columns entry 9 is out of range"),
        ({"categorical_columns": [4]}, r"the label column 'column_4' is declared categorical"),
        ({"categorical_columns": [0], "feature_columns": [1, 2]}, r"'column_0' is not a feature column"),
        ({"categorical_columns": [0], "drop_columns": [-5]}, r"'column_0' is dropped"),
        ({"categorical_columns": [0, -5]}, r"categorical_columns names 'column_0' twice"),
    ],
)
def test_categorical_columns_that_do_not_fit_the_file_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidDatasetError, match=message):
        validate_dataset([IRIS], URI, DatasetDescription.from_value(fields))


# --- 3. clear errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"sepal_length,sepal_width,petal_length,petal_width,class\n",
        b"sepal_length,sepal_width,petal_length,petal_width,class",
        b"\xef\xbb\xbfa;b;label\r\n\r\n\r\n",
        b"a,b,label\n\n",
        b'"a","b","label"\n',
    ],
)
def test_a_header_without_data_rows_says_so(body: bytes) -> None:
    description = describe(delimiter=";") if b";" in body else DatasetDescription()
    with pytest.raises(InvalidDatasetError, match=r"has a header and no data rows") as caught:
        validate_dataset([body], URI, description)
    assert "only one class" not in str(caught.value)


def test_a_single_data_row_says_so() -> None:
    with pytest.raises(InvalidDatasetError, match=r"only one data row"):
        validate_dataset([b"5.1,3.5,1.4,0.2,Iris-setosa\n"], URI)


@pytest.mark.parametrize(
    ("first", "delimiter", "hint"),
    [
        ("sep=;", ",", "set delimiter: ';'"),
        ("sep=;", ";", None),
        ("sep=,", ",", None),
        ("\ufeffsep=|", ",", "set delimiter: '|'"),
        ("SEP=\t", ",", "set delimiter: '\\t'"),
        ("sep=;\r", ";", None),
    ],
)
def test_excels_sep_line_is_named(first: str, delimiter: str, hint: str | None) -> None:
    rows = [line.replace(",", first[-1] if first[-1] in ";|\t" else ",") for line in IRIS_LINES]
    body = (first + "\n" + "\n".join(rows) + "\n").encode()
    with pytest.raises(InvalidDatasetError, match=r"line 1: .*Excel.*remove that line") as caught:
        validate_dataset([body], URI, describe(delimiter=delimiter))
    if hint is not None:
        assert hint in str(caught.value)
    else:
        assert "set delimiter" not in str(caught.value)


class CountingInt(int):
    """An index that counts how often it is compared: a linear check compares each a bounded number of times."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingInt.comparisons += 1
        return int(self) == other

    __hash__ = int.__hash__


def test_the_description_checks_are_linear_in_the_columns() -> None:
    columns = [CountingInt(i) for i in range(3000)]
    CountingInt.comparisons = 0
    description = DatasetDescription.from_value(
        {"feature_columns": columns, "categorical_columns": columns[:1500], "label_column": 3000}
    )
    assert len(description.feature_columns or ()) == 3000
    assert CountingInt.comparisons < 10 * len(columns)  # a quadratic check makes millions


def test_forty_thousand_feature_columns_validate_quickly() -> None:
    width = 40_000
    names = [f"f{i}" for i in range(width)]
    header = ",".join([*names, "label"])
    rows = [",".join(["1"] * width + ["a"]), ",".join(["2"] * width + ["b"])]
    body = ("\n".join([header, *rows]) + "\n").encode()
    started = time.perf_counter()
    description = DatasetDescription.from_value(
        {"feature_columns": names, "categorical_columns": names[::2], "label_column": "label"}
    )
    stats = validate_dataset([body], URI, description)
    seconds = time.perf_counter() - started
    assert len(stats.layout.features) == width
    print(f"40,000 named feature columns: described and validated in {seconds:.2f} s")
