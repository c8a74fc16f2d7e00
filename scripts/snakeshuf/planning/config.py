"""Checking the configuration against config/schema.yaml, with messages for humans."""

import os
import re

import jsonschema
import yaml
from snakemake.utils import validate

from snakeshuf.errors import ConfigError
from snakeshuf.sources import objects
from snakeshuf.sources.locations import check_no_urls, configured_paths
from snakeshuf.sources.pipes import STDIN


# JSON Schema counts 1000.0 as an integer; a seed or a count given as a float
# is a mistake (`--config seed=1e3`), and some of them would fail only deep in a job.
STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
)
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=STRICT_TYPES)
TYPE_NAMES = {
    "integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
    "object": "a mapping", "boolean": "true or false",
}


def describe(error, schema):
    """One line for one schema violation, naming the config key."""
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(schema["properties"]))
        known = ", ".join(schema["properties"])
        return f"unknown config key(s) {', '.join(map(repr, unknown))}; the keys are: {known}"
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    if error.validator == "required":
        return f"config key {error.message}: say which files to shuffle"
    if error.validator == "type":
        return f"config key '{key}' must be {TYPE_NAMES[error.validator_value]} (it is {error.instance!r})"
    if error.validator == "oneOf" and key in ONE_OF:
        return f"config key '{key}': {error.instance!r} is {ONE_OF[key]}"
    return f"config key '{key}': {error.message}"


# What the keys whose schema is a oneOf take, in words.
ONE_OF = {
    "chunk_mb": "neither a positive integer nor 'auto'",
    "head": "not a whole number of 0 or more (or empty: all records)",
    "fraction": "not a number from 0 to 1 (or empty: all records)",
    "dedup": "not none, record or {field: a name or a column number from 1, format: jsonl|tsv|csv, "
    "missing: error|keep|drop}",
}
SEPARATOR_BYTES = {"newline": 10, "nul": 0, "\n": 10, "\0": 0}


def separator_byte(config):
    return SEPARATOR_BYTES[config["separator"]]


def number_or_text(value):
    """'2' -> 2 and '0.1' -> 0.1; anything else as it is."""
    if isinstance(value, str) and re.fullmatch(r"\d+", value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\d*\.\d+", value):
        return float(value)
    return value


def read_command_line_values(config, schema):
    """What Snakemake's --config leaves as strings: booleans
    (`check_disk_space=false`), one input (`inputs=a.jsonl`) and the numbers
    inside splits (`'splits={valid: 0.1, train: {size: rest, shards: 8}}'`),
    weights (`'weights={a.jsonl: 0.5}'`), 'parquet' and a dedup column's number."""
    words = {"true": True, "false": False}
    for key, spec in schema["properties"].items():
        value = config.get(key)
        if spec.get("type") == "boolean" and isinstance(value, str) and value.lower() in words:
            config[key] = words[value.lower()]
    if isinstance(config.get("inputs"), str):
        config["inputs"] = [config["inputs"]]
    if isinstance(config.get("weights"), dict):
        config["weights"] = {source: number_or_text(w) for source, w in config["weights"].items()}
    if isinstance(config.get("parquet"), dict):
        config["parquet"] = {key: number_or_text(value) for key, value in config["parquet"].items()}
    if isinstance(config.get("dedup"), dict) and "field" in config["dedup"]:
        config["dedup"]["field"] = number_or_text(config["dedup"]["field"])
    splits = config.get("splits")
    if isinstance(splits, dict):
        for name, size in splits.items():
            if isinstance(size, dict):
                splits[name] = {part: number_or_text(value) for part, value in size.items()}
            else:
                splits[name] = number_or_text(size)


def check_config(config, schema_path):
    """Validate `config` and fill in defaults; raise ConfigError listing every problem."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    read_command_line_values(config, schema)
    problems = [describe(e, schema) for e in Validator(schema).iter_errors(config)]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    validate(config, schema_path, set_default=True)
    check_no_urls(configured_paths(config))
    return config


def input_path(config, path):
    """A configured input path, taken from config key 'relative_to' if relative."""
    return path if path == STDIN or objects.is_object(path) else os.path.join(config["relative_to"], path)
