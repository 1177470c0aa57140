"""`pipeline predict`'s input: anything it cannot read is an InvalidDatasetError naming the line and column.

``predicting.read_input`` reads a CSV by a model's card; here the cards are written by hand, so no
model is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpipe.description import DatasetDescription
from mlpipe.exceptions import InvalidDatasetError
from mlpipe.predicting import read_input


def card(
    *,
    header: bool = True,
    delimiter: str = ",",
    kinds: dict[str, str] | None = None,
    label_kind: str = "integer",
) -> dict[str, Any]:
    kinds = kinds or {"a": "numeric", "b": "numeric"}
    features = list(kinds)
    description = DatasetDescription.from_value({"delimiter": delimiter}).to_dict()
    return {
        "input": {"columns": features, "label_column": "label"},
        "dataset": {
            "description": description,
            "resolved": {
                "label_column": "label",
                "kinds": kinds,
                "columns": [*features, "label"],
                "header": {"present": header},
                "label_kind": label_kind,
            },
        },
    }


def write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "input.csv"
    path.write_bytes(body)
    return path


def test_a_valid_file_reads_as_before(tmp_path: Path) -> None:
    frame, labels = read_input(write(tmp_path, b"a,b,label\n1,2,0\n3.5,-4e3,1\n"), card())
    assert frame.to_dict("list") == {"a": [1.0, 3.5], "b": [2.0, -4000.0]}
    assert labels == [0, 1]


def test_a_field_over_the_csv_modules_default_limit_is_read_like_training_reads_it(tmp_path: Path) -> None:
    long = "x" * 200_000  # over the csv module's default 128 KiB, under the training's 1 MiB line
    kinds = {"a": "numeric", "c": "categorical"}
    frame, _ = read_input(write(tmp_path, f'a,c,label\n1,"{long}",0\n'.encode()), card(kinds=kinds))
    assert frame["c"].tolist() == [long]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"a,b,label\n1,2,0\n3," + b"7" * 2_000_000 + b",1\n", "line 3"),  # one line over 1 MiB
        (b'a,b,label\n1,2,0\n3,"' + b"7\n" * 600_000 + b'",1\n', "line 3"),  # one field over 1 MiB, many lines
        (b"a,b,label\n1,2,0\n3,\xff\xfe,1\n", "line 3"),  # not UTF-8
        (b"a,b,label\n1,2,0\n3,4\x00,1\n", "line 3"),  # a NUL byte
        (b'a,b,label\n1,2,0\n"3"x,4,1\n', "line 3"),  # malformed quoting
        (b"a,b,label\n1,2,0\n3," + b"9" * 400 + b",1\n", "line 3, column 'b'"),  # a 400-digit number
        (b"a,b,label\n1,2,0\n1e999,4,1\n", "line 3, column 'a'"),
        (b"a,b,label\n1,2,0\n-1e39,4,1\n", "line 3, column 'a'"),
        (b"a,b,label\n1,2,0\n3,4,5,1\n", "line 3"),
    ],
    ids=["long-line", "long-field", "not-utf8", "nul", "bad-quote", "400-digits", "1e999", "1e39", "too-wide"],
)
def test_unreadable_input_is_an_invalid_dataset_naming_where(tmp_path: Path, body: bytes, where: str) -> None:
    with pytest.raises(InvalidDatasetError, match=where):
        read_input(write(tmp_path, body), card())


def test_a_label_too_long_for_an_integer_is_kept_as_text(tmp_path: Path) -> None:
    big = "7" * 5000
    _, labels = read_input(write(tmp_path, f"a,b,label\n1,2,{big}\n1,2,3\n".encode()), card())
    assert labels == [big, 3]


def test_the_wrong_delimiter_shows_the_header_read_and_the_models_delimiter(tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError) as caught:
        read_input(write(tmp_path, b"a;b;label\n1;2;0\n"), card())
    message = str(caught.value)
    assert "line 1" in message
    assert "'a;b;label'" in message  # the header as read: one column
    assert "delimiter ','" in message  # the one the model was trained with
    assert "';'" in message  # the one the file seems to use
    assert message.count("'a'") == 1  # the missing and the expected columns are not the same list twice


def test_some_missing_columns_are_named_once_with_the_header_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError) as caught:
        read_input(write(tmp_path, b"a,label,z\n1,0,3\n"), card())
    message = str(caught.value)
    assert "'b'" in message
    assert "a, label, z" in message


def test_the_wrong_delimiter_without_a_header_suggests_the_models(tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 1: .*delimiter ','.*';'"):
        read_input(write(tmp_path, b"1;2;0\n3;4;1\n"), card(header=False, delimiter=","))


def test_excels_sep_line_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError, match=r"line 1: .*Excel.*remove that line"):
        read_input(write(tmp_path, b"sep=,\na,b,label\n1,2,0\n"), card())


def test_many_columns_are_matched_in_linear_time(tmp_path: Path) -> None:
    names = [f"f{i}" for i in range(40_000)]
    kinds = dict.fromkeys(names, "numeric")
    body = (",".join([*names, "label"]) + "\n" + ",".join(["1"] * 40_000 + ["0"]) + "\n").encode()
    frame, labels = read_input(write(tmp_path, body), card(kinds=kinds))
    assert frame.shape == (1, 40_000)
    assert labels == [0]
