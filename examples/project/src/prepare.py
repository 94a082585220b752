"""Merge the raw CSV files and split them into a training and a test set."""

import random
from pathlib import Path

from common import params, read_rows, write_rows

p = params()["prepare"]
rows = [row for path in sorted(Path("data/raw").glob("*.csv")) for row in read_rows(path)]
random.Random(p["seed"]).shuffle(rows)
cut = int(len(rows) * (1 - p["split"]))
fields = list(rows[0])
write_rows("data/prepared/train.csv", rows[:cut], fields)
write_rows("data/prepared/test.csv", rows[cut:], fields)
print(f"prepared {cut} training and {len(rows) - cut} test rows")
