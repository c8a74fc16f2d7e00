"""Sample sheets: the input files listed in a table (config key 'sample_sheet'),
read with pandas and checked row by row against config/sample_sheet.schema.yaml."""

import re

from snakeshuf.errors import ConfigError


def read_sample_sheet(path, schema_path):
    """The 'path' column of a .csv (comma) or other (tab-separated) table, in order."""
    import pandas as pd  # only runs that use a sample sheet pay for the import
    from snakemake.utils import validate
    from snakemake_interface_common.exceptions import WorkflowError

    where = f"sample sheet '{path}' (config key 'sample_sheet')"
    try:
        table = pd.read_csv(
            path, sep="," if path.lower().endswith(".csv") else "\t", dtype=str, keep_default_na=False
        )
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{where} cannot be read as a table: {error}") from None
    if "path" not in table.columns:
        columns = ", ".join(map(repr, table.columns))
        raise ConfigError(f"{where} has no column 'path' (its header names {columns}); name the files' column 'path'")
    if table.empty:
        raise ConfigError(f"{where} lists no files: add at least one row under its header")
    try:
        validate(table, schema_path)
    except WorkflowError as error:
        raise ConfigError(f"{where}, {describe_row_error(str(error))}") from None
    return table["path"].tolist()


def describe_row_error(message):
    """'line N: what is wrong' from snakemake.utils.validate's message (rows
    count from 0 there; line 1 of the file is the header)."""
    row = re.search(r"row (\d+)", message)
    problem = re.search(r"ValidationError: (.*)", message)
    line = f"line {int(row.group(1)) + 2}" if row else "a row"
    return f"{line}: {problem.group(1) if problem else message.splitlines()[0]}"
