"""Sample sheets: the input files listed in a table (config key 'sample_sheet'),
read strictly and checked row by row against config/sample_sheet.schema.yaml.

A .csv sheet is read as RFC 4180 says (fields may be quoted); any other is
tab-separated and read literally (a quote is part of the name). Every row has
as many fields as the header: a row with one more would shift the columns,
so it is an error naming the line. Empty lines are skipped.
"""

import csv
import re

from snakeshuf.errors import ConfigError

DIALECTS = {
    "csv": {"delimiter": ",", "strict": True},
    "tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE},
}


def read_sample_sheet(path, schema_path):
    """The rows of a sheet, in order: each a dict of its columns ('path', and
    'source' and 'weight' if the sheet has them)."""
    where = f"sample sheet '{path}' (config key 'sample_sheet')"
    header, rows = read_rows(path, where)
    if "path" not in header:
        columns = ", ".join(map(repr, header))
        raise ConfigError(f"{where} has no column 'path' (its header names {columns}); name the files' column 'path'")
    if not rows:
        raise ConfigError(f"{where} lists no files: add at least one row under its header")
    records = [dict(zip(header, fields)) for _, fields in rows]
    validate_rows(records, [line for line, _ in rows], schema_path, where)
    return records


def read_rows(path, where):
    """The header and (line number, fields) of every non-empty row."""
    dialect = DIALECTS["csv" if path.lower().endswith(".csv") else "tsv"]
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, **dialect)
            header = next(reader, [])
            rows = [(reader.line_num, fields) for fields in reader if fields]
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{where} cannot be read as a table: {error}") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"{where} names column(s) {', '.join(map(repr, repeated))} more than once in its header: "
            "each column needs a name of its own"
        )
    for line, fields in rows:
        if len(fields) != len(header):
            raise ConfigError(
                f"{where}, line {line}: {len(fields)} fields where the header has {len(header)} "
                f"({', '.join(map(repr, fields))}); remove the extra separator or add the missing field"
            )
    return header, rows


def validate_rows(records, lines, schema_path, where):
    import pandas as pd  # only runs that use a sample sheet pay for the import
    from snakemake.utils import validate
    from snakemake_interface_common.exceptions import WorkflowError

    try:
        validate(pd.DataFrame(records, dtype=str), schema_path)
    except WorkflowError as error:
        raise ConfigError(f"{where}, {describe_row_error(str(error), lines)}") from None


def describe_row_error(message, lines):
    """'line N: what is wrong' from snakemake.utils.validate's message (it
    counts rows from 0; `lines` gives each row's line in the file)."""
    row = re.search(r"row (\d+)", message)
    problem = re.search(r"ValidationError: (.*)", message)
    line = f"line {lines[int(row.group(1))]}" if row else "a row"
    return f"{line}: {problem.group(1) if problem else message.splitlines()[0]}"
