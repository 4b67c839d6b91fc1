"""Write a run's results.json, a Markdown report and its plots (matplotlib, Agg backend).

out_dir/
  results.json        every metric, per-category means and per-example scores
  report.md           summary table, per-category table, latency figures, the plots
  per_category.png    primary metric per category (tasks with categories)
  latency.png         histogram of per-example latency (tasks that time examples)
"""

from __future__ import annotations

import math
from pathlib import Path

from lmforge.eval.results import EvalResult, latency_summary


def write_run(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Save results.json, the plots and report.md into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results": result.save(out / "results.json")}
    if result.per_category:
        files["per_category"] = plot_per_category(result, out / "per_category.png")
    if result.latencies_ms:
        files["latency"] = plot_latency(result.latencies_ms, out / "latency.png")
    report = out / "report.md"
    report.write_text(render_markdown(result, {k: v.name for k, v in files.items()}))
    files["report"] = report
    return files


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and value > 1):
        return f"{int(value)}"
    return f"{value:.4f}"


def render_markdown(result: EvalResult, images: dict[str, str]) -> str:
    lines = [
        f"# Evaluation: {result.task}",
        "",
        f"- model: `{result.model}`",
        f"- task type: {result.type}; examples: {result.n}; run: {result.created};"
        f" duration: {result.duration_s:.1f} s",
    ]
    if result.config:
        settings = ", ".join(f"{k}={v}" for k, v in result.config.items() if v is not None)
        lines.append(f"- settings: {settings}")
    if result.skipped:
        lines.append(f"- skipped (bad items): {len(result.skipped)}, listed in results.json")
    lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
    for name, value in result.metrics.items():
        mark = " (primary)" if name == result.primary_metric else ""
        lines.append(f"| {name}{mark} | {_fmt(value)} |")
    if result.per_category:
        metric_names = [
            m for m in result.metrics if any(m in c for c in result.per_category.values())
        ]
        lines += ["", "## Per category", ""]
        lines.append("| category | n | " + " | ".join(metric_names) + " |")
        lines.append("|---|---|" + "---|" * len(metric_names))
        for cat, values in result.per_category.items():
            cells = " | ".join(_fmt(values.get(m, float("nan"))) for m in metric_names)
            lines.append(f"| {cat} | {int(values['n'])} | {cells} |")
        if "per_category" in images:
            lines += ["", f"![{result.primary_metric} per category]({images['per_category']})"]
    if result.latencies_ms:
        lat = latency_summary(result.latencies_ms)
        lines += ["", "## Latency", "", "| p50 ms | p95 ms | p99 ms |", "|---|---|---|"]
        lines.append(
            f"| {lat['latency_p50_ms']:.1f} | {lat['latency_p95_ms']:.1f} |"
            f" {lat['latency_p99_ms']:.1f} |"
        )
        if "latency" in images:
            lines += ["", f"![latency histogram]({images['latency']})"]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_per_category(result: EvalResult, path: Path) -> Path:
    plt = _pyplot()
    metric = result.primary_metric
    cats = [c for c, v in result.per_category.items() if metric in v]
    values = [result.per_category[c][metric] for c in cats]
    counts = [int(result.per_category[c]["n"]) for c in cats]
    height = max(2.5, 0.28 * len(cats) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh(range(len(cats)), values, color="#4c72b0")
    ax.set_yticks(range(len(cats)), [f"{c} (n={n})" for c, n in zip(cats, counts, strict=True)])
    ax.invert_yaxis()
    ax.axvline(result.metrics.get(metric, float("nan")), color="#c44e52", ls="--", label="overall")
    if values and max(values) <= 1.0:  # a rate: show the whole 0-1 scale
        ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(metric)
    ax.set_title(f"{result.task}: {metric} per category")
    ax.legend(loc="lower right")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency(latencies_ms: list[float], path: Path) -> Path:
    plt = _pyplot()
    lat = latency_summary(latencies_ms)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(latencies_ms, bins=min(40, max(5, len(latencies_ms) // 3)), color="#55a868")
    for name, style in (("latency_p50_ms", "-"), ("latency_p95_ms", "--"), ("latency_p99_ms", ":")):
        ax.axvline(lat[name], color="black", ls=style, label=f"{name[8:11]} {lat[name]:.0f} ms")
    ax.set_xlabel("latency per example (ms)")
    ax.set_ylabel("examples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
