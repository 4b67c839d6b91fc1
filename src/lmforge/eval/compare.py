"""Compare two evaluation runs: a regression table with paired bootstrap confidence intervals.

Both runs must score the same task; examples are matched by id. For each metric with
per-example scores, the difference B - A of the means gets a 95% interval from the paired
bootstrap (resample the shared examples with replacement, recompute the mean difference).
An interval entirely below zero is a regression, entirely above an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.errors import LmforgeError
from lmforge.eval.results import EvalResult


@dataclass
class MetricComparison:
    metric: str
    n: int
    a: float
    b: float
    delta: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        if self.high < 0:
            return "regression"
        if self.low > 0:
            return "improvement"
        return "no significant change"


def paired_bootstrap(
    a: list[float], b: list[float], *, samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(b) - mean(a) over paired observations."""
    import numpy as np

    diffs = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def compare_runs(
    a: EvalResult, b: EvalResult, *, samples: int = 1000, seed: int = 0
) -> list[MetricComparison]:
    if a.task != b.task:
        raise LmforgeError(f"runs are of different tasks ({a.task!r} vs {b.task!r})")
    b_by_id = {ex["id"]: ex for ex in b.examples}
    pairs = [(ex, b_by_id[ex["id"]]) for ex in a.examples if ex["id"] in b_by_id]
    if not pairs:
        raise LmforgeError("the two runs share no example ids: nothing to compare")
    out = []
    for metric in a.metrics:
        shared = [
            (ea["scores"][metric], eb["scores"][metric])
            for ea, eb in pairs
            if metric in ea.get("scores", {}) and metric in eb.get("scores", {})
        ]
        shared = [(x, y) for x, y in shared if x is not None and y is not None]
        if not shared:
            continue
        xs, ys = [p[0] for p in shared], [p[1] for p in shared]
        lo, hi = paired_bootstrap(xs, ys, samples=samples, seed=seed)
        ma, mb = sum(xs) / len(xs), sum(ys) / len(ys)
        out.append(MetricComparison(metric, len(shared), ma, mb, mb - ma, lo, hi))
    return out


def render_table(rows: list[MetricComparison], a_label: str = "A", b_label: str = "B") -> str:
    lines = [
        f"| metric | n | {a_label} | {b_label} | delta (B-A) | 95% CI | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.metric} | {r.n} | {r.a:.4f} | {r.b:.4f} | {r.delta:+.4f} |"
            f" [{r.low:+.4f}, {r.high:+.4f}] | {r.verdict} |"
        )
    return "\n".join(lines)
