"""Regenerate the README's results section from the committed benchmark results (bench/results/*.jsonl).

For every device file, the latest run of each op (the rows sharing its newest date and commit) becomes a table:
median ms per provider side by side, the Triton provider's speed-up over each other one, its achieved throughput
against the device's limit, and peak memory. Nothing in that section of the README is typed by hand.

    python bench/report.py            # rewrites README.md between the markers
    python bench/report.py --print    # prints the section instead
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"
OURS = "triton"
NO_RESULTS = (
    "No GPU results yet: no benchmark of these kernels has been run on a GPU. `make bench` on a machine with CUDA "
    "appends them to `bench/results/<device>.jsonl`, and `python bench/report.py` rewrites this section."
)


def latest_runs(rows: list[dict]) -> dict:
    """op -> the rows of its newest run (same commit and date as its newest row)."""
    runs: dict[str, list[dict]] = {}
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = [r for r in rows if r["op"] == op]
        newest = max(mine, key=lambda r: r["date"])
        runs[op] = [r for r in mine if r["commit"] == newest["commit"] and r["date"][:10] == newest["date"][:10]]
    return runs


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def op_table(rows: list[dict]) -> list[str]:
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    others = [p for p in providers if p != OURS]
    head = ["case", "dtype", "mode", *[f"{p} ms" for p in providers]]
    head += [f"{OURS} vs {p}" for p in others if OURS in providers]
    head += ["ours: throughput", "peak GiB (" + " / ".join(providers) + ")"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in dict.fromkeys((r["case"], r["dtype"], r["mode"]) for r in rows):
        found = {r["provider"]: r for r in rows if (r["case"], r["dtype"], r["mode"]) == key}
        cells = [*key, *[f"{found[p]['ms']:.3f}" if p in found else "-" for p in providers]]
        if OURS in providers:
            cells += [f"{found[p]['ms'] / found[OURS]['ms']:.2f}x" if p in found and OURS in found else "-"
                      for p in others]
        ours = found.get(OURS, {})
        if "gb_per_s" in ours:
            share = f" ({100 * ours['bandwidth_share']:.0f}% of HBM)" if "bandwidth_share" in ours else ""
            cells.append(f"{ours['gb_per_s']:.0f} GB/s{share}")
        elif "tflop_per_s" in ours:
            share = f" ({100 * ours['flops_share']:.0f}% of peak)" if "flops_share" in ours else ""
            cells.append(f"{ours['tflop_per_s']:.0f} TFLOP/s{share}")
        else:
            cells.append("-")
        peaks = [_gib(found[p]["peak_memory_bytes"]) if "peak_memory_bytes" in found.get(p, {}) else "-"
                 for p in providers]
        cells.append(" / ".join(peaks))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def step_table(rows: list[dict]) -> list[str]:
    eager = next((r for r in rows if r["provider"] == "eager"), None)
    lines = ["| provider | ms/step | images/s | vs eager | peak GiB | top kernel families (ms/step) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{eager['ms'] / r['ms']:.2f}x" if eager else "-"
        families = ", ".join(f"{name} {ms:.1f}" for name, ms in list(r.get("family_ms", {}).items())[:4])
        lines.append(f"| {r['provider']} | {r['ms']:.1f} | {r['images_per_s']:.1f} | {ratio} | "
                     f"{_gib(r['peak_memory_bytes'])} | {families} |")
    return lines


def section() -> str:
    files = sorted(RESULTS_DIR.glob("*.jsonl"))
    if not files:
        return NO_RESULTS
    parts = []
    for path in files:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for op, run in latest_runs(rows).items():
            first = run[0]
            parts.append(f"**{op}** on {first['device']}, {first['date'][:10]}, commit {first['commit']} "
                         f"(torch {first['torch']}, triton {first['triton']})\n")
            parts += step_table(run) if op == "training_step" else op_table(run)
            plot = path.with_name(f"{path.stem}_{op}.png")
            if plot.exists():
                parts.append(f"\n![{op} on {first['device']}]({plot.relative_to(ROOT)})")
            parts.append("")
    return "\n".join(parts).strip()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the section instead of writing README.md")
    args = parser.parse_args(argv)
    text = section()
    if args.print:
        print(text)
        return
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{README} lacks the markers {START} ... {END}")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{text}\n{END}{after}")
    print(f"README.md results section rewritten from {len(list(RESULTS_DIR.glob('*.jsonl')))} result file(s)")


if __name__ == "__main__":
    main()
