"""Small helpers shared by the example stages: CSV in and out, parameters."""

import csv
import json
from pathlib import Path


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path, rows, fields):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def params():
    """params.yaml is tiny and flat enough to read without a YAML library."""
    values, section = {}, None
    for line in Path("params.yaml").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(":")
        if not line.startswith(" "):
            section = key
            values[section] = {}
        else:
            values[section][key] = json.loads(value.strip())
    return values
