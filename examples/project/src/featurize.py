"""Standardise the numeric columns with the training set's mean and deviation."""

import statistics

from common import read_rows, write_rows

COLUMNS = ["temp_c", "humidity", "wind_kmh"]
train = read_rows("data/prepared/train.csv")
test = read_rows("data/prepared/test.csv")
stats = {}
for column in COLUMNS:
    values = [float(row[column]) for row in train]
    stats[column] = (statistics.mean(values), statistics.pstdev(values) or 1.0)


def features(rows):
    return [
        {
            **{c: f"{(float(r[c]) - stats[c][0]) / stats[c][1]:.6f}" for c in COLUMNS},
            "rain": r["rain"],
        }
        for r in rows
    ]


write_rows("data/features/train.csv", features(train), [*COLUMNS, "rain"])
write_rows("data/features/test.csv", features(test), [*COLUMNS, "rain"])
print(f"featurized {len(train)} + {len(test)} rows")
