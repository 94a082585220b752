"""Logistic regression by gradient descent, in plain Python."""

import json
import math
from pathlib import Path

from common import params, read_rows

p = params()["train"]
rows = read_rows("data/features/train.csv")
columns = [c for c in rows[0] if c != "rain"]
x = [[float(r[c]) for c in columns] for r in rows]
y = [int(r["rain"]) for r in rows]
weights, bias = [0.0] * len(columns), 0.0
for _ in range(p["epochs"]):
    grad_w, grad_b = [0.0] * len(columns), 0.0
    for features, label in zip(x, y, strict=True):
        z = bias + sum(w * v for w, v in zip(weights, features, strict=True))
        error = 1 / (1 + math.exp(-z)) - label
        grad_w = [g + error * v for g, v in zip(grad_w, features, strict=True)]
        grad_b += error
    weights = [w - p["lr"] * g / len(x) for w, g in zip(weights, grad_w, strict=True)]
    bias -= p["lr"] * grad_b / len(x)
Path("models").mkdir(exist_ok=True)
Path("models/model.json").write_text(
    json.dumps({"columns": columns, "weights": weights, "bias": bias}, indent=2) + "\n"
)
print(f"trained on {len(x)} rows: lr={p['lr']}, epochs={p['epochs']}")
