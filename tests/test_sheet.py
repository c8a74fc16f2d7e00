"""Sample sheets are read strictly: a row never shifts its columns, and
quoting follows one rule per format (hostile pass, item 2)."""

from pathlib import Path

import pytest

from snakeshuf.errors import ConfigError
from snakeshuf.planning.sheet import read_sample_sheet

SCHEMA = str(Path(__file__).resolve().parent.parent / "config" / "sample_sheet.schema.yaml")


def read(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return [row["path"] for row in read_sample_sheet(str(path), SCHEMA)]


@pytest.mark.parametrize(
    "text, line",
    [
        ("path\tmirror\na.txt\tb.txt\t\n", 2),  # one trailing tab: pandas took 'path' for the index
        ("path\tsource\na.txt\tweb\nc.txt\tcc\textra\n", 3),
        ("path\tsource\na.txt\n", 2),
    ],
)
def test_a_row_with_another_field_count_than_the_header_is_refused_naming_its_line(tmp_path, text, line):
    with pytest.raises(ConfigError) as error:
        read(tmp_path, "s.tsv", text)
    assert f"sample sheet '{tmp_path / 's.tsv'}' (config key 'sample_sheet'), line {line}:" in str(error.value)
    assert "fields where the header has" in str(error.value)


def test_tsv_fields_are_literal_and_csv_fields_follow_rfc_4180(tmp_path):
    assert read(tmp_path, "s.tsv", 'source\tpath\nweb\t"q".txt\nweb\ta,b.txt\n') == ['"q".txt', "a,b.txt"]
    assert read(tmp_path, "s.csv", 'source,path\nweb,"q.txt"\nweb,"a,b.txt"\nweb,"say ""hi"".txt"\n') == [
        "q.txt",
        "a,b.txt",
        'say "hi".txt',
    ]


def test_empty_lines_are_skipped_and_lines_are_counted_in_the_file(tmp_path):
    assert read(tmp_path, "s.tsv", "path\n\na.txt\n\n\nb.txt\n\n") == ["a.txt", "b.txt"]
    with pytest.raises(ConfigError, match="line 3: '' should be non-empty"):
        read(tmp_path, "s.tsv", "path\tsource\n\n\tweb\n")


def test_a_sheet_that_is_not_utf8_or_has_an_open_quote_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read as a table"):
        read(tmp_path, "s.csv", 'path\n"a.txt\n')
    (tmp_path / "b.tsv").write_bytes(b"path\ncaf\xe9.txt\n")
    with pytest.raises(ConfigError, match="cannot be read as a table"):
        read_sample_sheet(str(tmp_path / "b.tsv"), SCHEMA)


@pytest.mark.parametrize("name, text", [("s.tsv", "path\tpath\na.txt\tb.txt\n"), ("s.csv", "path,x,path\na,1,b\n")])
def test_a_column_named_twice_is_refused(tmp_path, name, text):
    """Found by a hostile pass: the second 'path' column silently won."""
    with pytest.raises(ConfigError) as error:
        read(tmp_path, name, text)
    assert "names column(s) 'path' more than once" in str(error.value) and name in str(error.value)
