"""Cold start-up of the `lmforge` command next to `python -c "import torch"`, side by side.

    .venv/bin/python benchmarks/startup.py             # 5 rounds of each command
    .venv/bin/python benchmarks/startup.py --rounds 2

Each command runs in a fresh subprocess, one after the other (never two torch processes at once:
on two cores they slow each other down about tenfold), in interleaved rounds so drift of the
shared host hits every row alike. Prints the median wall time of each and its ratio to
`import torch`. Targets (issue 12): `generate --max-new-tokens 1` with the bundled model within
1.8x of `import torch`; a cold `ask` over the bundled sample corpus (indexed once beforehand,
untimed), its wall time minus the generation and verification it reports in `timings_ms`,
within 2x; `lmforge --help` without importing torch at all (checked here too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmforge.assets import DEFAULT_MODEL

LMFORGE = [sys.executable, "-c", "import sys; from lmforge.cli import main; sys.exit(main())"]
COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    f"lmforge generate --max-new-tokens 1 ({DEFAULT_MODEL})": [
        *LMFORGE,
        "generate",
        "--model",
        DEFAULT_MODEL,
        "--prompt",
        "The capital of France is",
        "--max-new-tokens",
        "1",
    ],
    "lmforge --help": [*LMFORGE, "--help"],
}
TARGET = 1.8  # cold generate / import torch
ASK_TARGET = 2.0  # cold ask, less its answering, / import torch
SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "src" / "lmforge" / "rag" / "sample_corpus"
ASK_ROW = "lmforge ask (wall - generate - verify)"


def run_once(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def ask_start_up(store: Path) -> float:
    """A cold `ask`'s wall time less the answering it reports (generation and verification)."""
    argv = [
        *LMFORGE,
        "ask",
        "--store",
        str(store),
        "--json",
        "How do I create a virtual environment?",
    ]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ask failed:\n{done.stderr[-2000:]}")
    timings = json.loads(done.stdout)["timings_ms"]
    answering = (timings.get("generate", 0.0) + timings.get("verify", 0.0)) / 1000
    if not timings.get("generate"):
        raise SystemExit("ask did not generate (refused or extractive): not a cold-start test")
    return elapsed - answering


def help_imports_torch() -> bool:
    code = (
        "import sys; from lmforge.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip().endswith("True")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # embedding cache off our home
        store = Path(tmp) / "store"
        index = [*LMFORGE, "index", str(SAMPLE_CORPUS), "--store", str(store), "--no-progress"]
        subprocess.run(index, check=True, capture_output=True)
        run_once(COMMANDS[next(iter(COMMANDS))])  # warm the page cache (torch, the GGUF)
        run_once(list(COMMANDS.values())[1])  # and the kernels' build cache
        times: dict[str, list[float]] = {name: [] for name in [*COMMANDS, ASK_ROW]}
        for r in range(args.rounds):
            for name, argv in COMMANDS.items():
                times[name].append(run_once(argv))
            times[ASK_ROW].append(ask_start_up(store))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    base = statistics.median(times[next(iter(COMMANDS))])
    print("| command | median wall s | vs import torch |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {t:.2f} | {t / base:.2f}x |")
    generate = statistics.median(list(times.values())[1]) / base
    ask = statistics.median(times[ASK_ROW]) / base
    print(f"\ncold generate / import torch: {generate:.2f}x (target <= {TARGET}x)")
    print(f"cold ask less answering / import torch: {ask:.2f}x (target <= {ASK_TARGET}x)")
    print(f"`lmforge --help` imports torch: {help_imports_torch()} (target: False)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
