"""The result of one evaluation run, as written to results.json.

Every run keeps per-example scores, so reports can break results down by category and
``lmforge eval compare`` can bootstrap confidence intervals over the same examples.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError


@dataclass
class EvalResult:
    task: str
    type: str
    model: str
    n: int
    metrics: dict[str, float]  # aggregate values, shown in summaries
    primary_metric: str
    examples: list[dict[str, Any]]  # each: id, category, scores {metric: value}, details...
    config: dict[str, Any] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    skipped: list[dict[str, str]] = field(default_factory=list)  # bad items: id + reason

    def summary(self) -> dict[str, Any]:
        """The flat dictionary ``--json`` prints: task, n and the aggregate metrics."""
        return {"task": self.task, "n": self.n, **self.metrics}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read results.json (or the results.json inside a run directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise LmforgeError(f"{path}: no such results file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LmforgeError(f"{path}: not a results.json file ({exc})") from None
        except TypeError as exc:
            raise LmforgeError(f"{path}: not a results.json file ({exc})") from None


def mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def per_category(examples: list[dict[str, Any]], metrics: list[str]) -> dict[str, dict[str, float]]:
    """Mean of each metric per example category (empty when the task has no categories)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for ex in examples:
        if ex.get("category"):
            groups.setdefault(ex["category"], []).append(ex)
    out = {}
    for name in sorted(groups):
        rows = groups[name]
        out[name] = {"n": len(rows)}
        for m in metrics:
            values = [r["scores"][m] for r in rows if m in r["scores"]]
            if values:
                out[name][m] = mean(values)
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation (numpy's default method)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "latency_p50_ms": percentile(latencies_ms, 50),
        "latency_p95_ms": percentile(latencies_ms, 95),
        "latency_p99_ms": percentile(latencies_ms, 99),
    }
