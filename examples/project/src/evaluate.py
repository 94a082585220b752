"""Accuracy and log-loss of the model on the test set, written to metrics.json."""

import json
import math
from pathlib import Path

from common import read_rows

model = json.loads(Path("models/model.json").read_text())
rows = read_rows("data/features/test.csv")
correct, loss = 0, 0.0
for row in rows:
    z = model["bias"] + sum(
        w * float(row[c]) for w, c in zip(model["weights"], model["columns"], strict=True)
    )
    prob = min(max(1 / (1 + math.exp(-z)), 1e-9), 1 - 1e-9)
    label = int(row["rain"])
    correct += (prob >= 0.5) == bool(label)
    loss -= label * math.log(prob) + (1 - label) * math.log(1 - prob)
metrics = {"accuracy": round(correct / len(rows), 4), "logloss": round(loss / len(rows), 4)}
Path("metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
print(f"accuracy {metrics['accuracy']}, logloss {metrics['logloss']}")
