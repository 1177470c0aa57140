"""The dataset validator: what it accepts, what it names, and (property) that it never fails any other way."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpipe.dataset import validate_dataset
from mlpipe.description import DatasetDescription
from mlpipe.exceptions import InvalidDatasetError
from mlpipe.training import read_dataset
from tests.conftest import SAMPLE

IRIS = SAMPLE.read_bytes()
URI = "s3://bucket/runs/2026-11-25/dataset.csv"


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into pieces of the given sizes (cycled), to feed the validator as a stream would."""
    pieces, start, index = [], 0, 0
    while start < len(data):
        size = max(1, sizes[index % len(sizes)]) if sizes else len(data)
        pieces.append(data[start : start + size])
        start += size
        index += 1
    return pieces


def test_the_uci_file_is_valid() -> None:
    stats = validate_dataset([IRIS], URI)
    assert stats.rows == 150
    assert stats.class_counts == {"Iris-setosa": 50, "Iris-versicolor": 50, "Iris-virginica": 50}
    assert stats.bytes == 4551
    assert stats.layout.header.present is False
    assert stats.layout.feature_names == ["column_0", "column_1", "column_2", "column_3"]
    assert set(stats.kinds.values()) == {"numeric"}
    assert stats.label_kind == "string"


def test_blank_line_inside_the_data_is_refused_with_both_line_numbers() -> None:
    lines = IRIS.decode().splitlines()
    text = "\n".join([*lines[:10], "", *lines[10:150]]) + "\n"
    with pytest.raises(InvalidDatasetError, match=r"line 11: blank line inside the data \(data continues at line 12\)"):
        validate_dataset([text.encode()], URI)


def test_a_header_row_is_detected_and_names_the_columns() -> None:
    stats = validate_dataset([b"sepal_length,sepal_width,petal_length,petal_width,class\n" + IRIS], URI)
    assert stats.rows == 150
    assert stats.layout.header.present is True
    assert "numeric below the first row but not in it" in stats.layout.header.reason
    assert stats.layout.label_name == "class"
    assert stats.layout.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_header_false_reads_the_first_row_as_data() -> None:
    description = DatasetDescription.from_value({"header": False})
    stats = validate_dataset([b"a,b,class\nc,d,x\na,d,y\nc,b,x\na,b,y\n"], URI, description)
    assert stats.layout.header.present is False
    assert stats.rows == 5
    assert stats.class_counts["class"] == 1
    assert stats.kinds == {"column_0": "categorical", "column_1": "categorical"}


@pytest.mark.parametrize(
    ("body", "present"),
    [
        (b"outlook,windy,play\nsunny,yes,no\nrain,no,yes\nsunny,no,yes\n", True),  # names never recur below
        (b"sunny,yes,no\nrain,no,yes\nsunny,no,yes\nrain,yes,no\n", False),  # first row's values recur: data
        (b"1,2,x\n3,4,y\n5,6,x\n", False),
    ],
)
def test_the_auto_header_rule_for_all_text_and_numeric_files(body: bytes, present: bool) -> None:
    assert validate_dataset([body], URI).layout.header.present is present


def test_naming_a_column_means_the_file_has_a_header() -> None:
    stats = validate_dataset(
        [b"x,label,y\n1,a,2\n3,b,4\n"], URI, DatasetDescription.from_value({"label_column": "label"})
    )
    assert (stats.layout.label_name, stats.layout.feature_names) == ("label", ["x", "y"])


def test_quoted_fields_may_hold_the_delimiter_quotes_and_newlines() -> None:
    body = b'f,text,label\n1,"a, b",x\n2,"say ""hi""",y\n3,"two\nlines",x\n4,plain,y\n'
    stats = validate_dataset([body], URI)
    assert stats.rows == 4
    assert stats.kinds == {"f": "numeric", "text": "categorical"}


def test_a_broken_quote_is_named_with_its_line() -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 3: malformed CSV"):
        validate_dataset([b'f,label\n1,x\n"2"x,y\n'], URI)


def test_another_delimiter_and_a_hint_when_it_is_wrong() -> None:
    body = b"a;b;label\n1;2;x\n3;4;y\n"
    assert validate_dataset([body], URI, DatasetDescription.from_value({"delimiter": ";"})).rows == 2
    with pytest.raises(InvalidDatasetError, match=r"found 1 column.*delimiter"):
        validate_dataset([body], URI)


def test_a_row_with_another_number_of_columns_is_named() -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 3: expected 3 columns, as in the first row, found 4"):
        validate_dataset([b"a,b,label\n1,2,x\n3,4,5,y\n"], URI)


def test_missing_cells_are_refused_unless_imputed() -> None:
    body = b"a,b,label\n1,,x\n3,NA,y\n4,5,x\n6,?,y\n"
    with pytest.raises(InvalidDatasetError, match=r"line 2, column 2: missing value \(empty\) in column 'b'"):
        validate_dataset([body], URI)
    stats = validate_dataset([body], URI, DatasetDescription.from_value({"missing": "impute"}))
    assert stats.missing == {"b": 3}
    assert stats.kinds["b"] == "numeric"


def test_a_missing_label_is_refused_even_when_imputing() -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 3, column 3: missing label"):
        validate_dataset([b"a,b,label\n1,2,x\n3,4,\n"], URI, DatasetDescription.from_value({"missing": "impute"}))


def test_infinity_is_refused_and_integer_labels_are_integers() -> None:
    with pytest.raises(InvalidDatasetError, match="'inf' is not a finite number"):
        validate_dataset([b"a,label\n1,0\ninf,1\n"], URI)
    assert validate_dataset([b"a,label\n1,0\n2,1\n"], URI).label_kind == "integer"


def test_a_body_without_newlines_is_refused_before_it_fills_memory() -> None:
    with pytest.raises(InvalidDatasetError, match="a line longer than 1048576 bytes"):
        validate_dataset([b"1" * 1_100_000], URI)


def test_whitespace_around_values_is_tolerated() -> None:
    rows = [f" {line.replace(',', ' , ')} " for line in IRIS.decode().splitlines() if line]
    assert validate_dataset(["\n".join(rows).encode()], URI).rows == 150


def outcome(chunks: list[bytes]) -> object:
    try:
        return validate_dataset(chunks, URI, min_class_rows=2)
    except InvalidDatasetError as exc:
        return ("invalid", str(exc))


CSV_ALPHABET = st.sampled_from(
    [
        b"5.1",
        b"3",
        b"-0.2",
        b"nan",
        b"inf",
        b"1e3",
        b"",
        b" ",
        b",",
        b"\n",
        b"\r\n",
        b"\r",
        b"\xef\xbb\xbf",
        b"Iris-setosa",
        b"Iris-versicolor",
        b"Iris-virginica",
        b"Iris-other",
        b"\x00",
        b"\xff",
        b"<html>",
        b"\t",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), sizes=st.lists(st.integers(1, 64), max_size=8))
def test_any_bytes_are_a_valid_dataset_or_the_named_error(data: bytes, sizes: list[int]) -> None:
    # Property: nothing but InvalidDatasetError ever escapes, however the stream is cut.
    assert outcome(chunked(data, sizes)) == outcome([data])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(CSV_ALPHABET, max_size=300), sizes=st.lists(st.integers(1, 32), max_size=8))
def test_csv_like_bytes_are_a_valid_dataset_or_the_named_error(pieces: list[bytes], sizes: list[int]) -> None:
    data = b"".join(pieces)
    result = outcome(chunked(data, sizes))
    assert result == outcome([data])
    if isinstance(result, tuple):
        assert result[1].startswith(f"invalid dataset at {URI}")


@settings(max_examples=100, deadline=None)
@given(keep=st.lists(st.booleans(), min_size=150, max_size=150), sizes=st.lists(st.integers(1, 512), max_size=4))
def test_any_subset_of_the_iris_rows_validates_consistently(keep: list[bool], sizes: list[int]) -> None:
    lines = [line for line, k in zip(IRIS.decode().splitlines()[:150], keep, strict=True) if k]
    data = ("\n".join(lines) + "\n").encode()
    result = outcome(chunked(data, sizes))
    labels = {line.rsplit(",", 1)[1] for line in lines}
    counts = [sum(line.endswith(label) for line in lines) for label in labels]
    if len(labels) >= 2 and min(counts) >= 2:
        assert not isinstance(result, tuple)
    else:
        assert isinstance(result, tuple)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keep=st.lists(st.booleans(), min_size=150, max_size=150),
    prefix=st.sampled_from(["", "+", "0", " ", "-"]),
    suffix=st.sampled_from(["", "e0", " ", "0", "E-1"]),
    line_ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_whatever_the_validator_accepts_the_training_reader_reads_the_same(
    keep: list[bool], prefix: str, suffix: str, line_ending: str, bom: bool
) -> None:
    # Property: the pure-Python validator (download) and pandas (train) agree on every dataset the
    # validator accepts, so a stored dataset can always be trained on.

    rows = []
    for index, (line, k) in enumerate(zip(IRIS.decode().splitlines()[:150], keep, strict=True)):
        if k:
            features = line.split(",")
            features[index % 4] = prefix + features[index % 4] + suffix
            rows.append(",".join(features))
    data = (b"\xef\xbb\xbf" if bom else b"") + (line_ending.join(rows) + line_ending).encode()
    result = outcome([data])
    if isinstance(result, tuple):
        return
    features, targets = read_dataset(io.BytesIO(data), URI, result, DatasetDescription())
    assert features.shape == (result.rows, 4)
    assert len(targets) == result.rows


def test_an_overflowing_number_is_not_finite() -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 3, column 1: '1e999' is not a finite number"):
        validate_dataset([b"a,label\n1,x\n1e999,y\n"], URI)


def test_integer_labels_written_two_ways_are_one_class() -> None:
    stats = validate_dataset([b"a,label\n1,01\n2,1\n3,2\n4,02\n"], URI, min_class_rows=2)
    assert stats.class_counts == {"1": 2, "2": 2}


def test_na_with_spaces_around_it_reads_as_missing_in_training_too() -> None:

    body = b"a,b,label\n1, NA ,x\n2,3.5 ,y\n4,5,x\n6, 7,y\n"
    description = DatasetDescription.from_value({"missing": "impute"})
    stats = validate_dataset([body], URI, description)
    features, labels = read_dataset(io.BytesIO(body), URI, stats, description)
    assert features["b"].isna().tolist() == [True, False, False, False]
    assert features["b"].tolist()[1:] == [3.5, 5.0, 7.0]
    assert list(labels) == ["x", "y", "x", "y"]
