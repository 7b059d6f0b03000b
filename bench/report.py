"""Regenerate the README's results section from the committed benchmark results (bench/results/*.jsonl).

For every device file, the latest run of each op (the rows sharing its newest date and commit) becomes a table:
median ms per provider side by side, the Triton provider's speed-up over each other one, its achieved throughput
against the device's limit, and peak memory. A GPU session's other rows (bench/gpu_session.py: its units' statuses,
the device, the kernels compiled ahead, the measured ceilings, `pytest -m gpu`, CUDA-graph replays, the top kernels
of the Triton step) get a table each. Nothing in that section of the README is typed by hand.

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
    "No GPU results yet: no benchmark of these kernels has been run on a GPU. `make gpu-session` (or `make bench`) "
    "on a machine with CUDA appends them to `bench/results/<device>.jsonl`, and `python bench/report.py` rewrites "
    "this section."
)
# A GPU session's rows first (how the session went, on what), then the ops', the training step's and its kernels.
SECTION_ORDER = ("gpu_session", "environment", "compile_cache", "ceiling", "pytest", "cuda_graph")


def latest_runs(rows: list[dict]) -> dict:
    """op -> the rows of its newest run (same commit and date as its newest row)."""
    runs: dict[str, list[dict]] = {}
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = [r for r in rows if r["op"] == op]
        newest = max(mine, key=lambda r: r["date"])
        runs[op] = [r for r in mine if r["commit"] == newest["commit"] and r["date"][:10] == newest["date"][:10]]
    return runs


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def op_table(all_rows: list[dict]) -> list[str]:
    rows = [r for r in all_rows if "ms" in r]
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
        peaks = [_gib(found.get(p, {}).get("peak_memory_bytes")) for p in providers]
        cells.append(" / ".join(peaks))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + _unmeasured(all_rows)


def _unmeasured(rows: list[dict]) -> list[str]:
    """The rows that carry an error or a skip instead of a time, one line per provider."""
    missing: dict[str, list[str]] = {}
    for r in rows:
        if "error" in r or "skipped" in r:
            missing.setdefault(r.get("provider", "-"), []).append(r.get("error") or f"skipped: {r['skipped']}")
    lines = [f"- {provider}: {len(reasons)} not measured ({reasons[0][:120]}{'; ...' if len(reasons) > 1 else ''})"
             for provider, reasons in missing.items()]
    return ["", *lines] if lines else []


def _cells(values) -> str:
    return "| " + " | ".join("-" if v is None else str(v) for v in values) + " |"


def _table(head: list[str], rows: list[list]) -> list[str]:
    return [_cells(head), "|" + "---|" * len(head), *(_cells(row) for row in rows)]


def session_table(rows: list[dict]) -> list[str]:
    return _table(["step", "unit", "status", "seconds", "rows", "errors", "skipped", "Triton kernels compiled", "note"],
                  [[r["step"], r["unit"], r["status"], r.get("seconds"), r.get("rows"), r.get("errors"),
                    r.get("skipped"), r.get("triton_cache_added"), (r.get("error") or r.get("note") or "")[:120]]
                   for r in rows])


def compile_cache_table(rows: list[dict]) -> list[str]:
    """profiling/compile_cache.py's run: launches compiled ahead by a pool of processes."""
    return _table(["dtypes", "launches", "compiled", "not compiled", "errors", "processes", "compile s (sum)",
                   "wall s"],
                  [[" ".join(r["dtypes"]), r["launches_captured"], r["compiled"], r["not_compiled"], r["errors"],
                    r["workers"], r["compile_seconds"], r["seconds"]] for r in rows])


def environment_table(rows: list[dict]) -> list[str]:
    r = rows[0]
    memory = f"{r['memory_bytes'] / 2**30:.0f} GiB" if r.get("memory_bytes") else None
    return _table(["device", "SMs", "memory", "capability", "torch", "triton", "CUDA", "cuDNN"],
                  [[r["device"], r.get("sm_count"), memory, r.get("capability"), r["torch"], r["triton"],
                    r.get("cuda"), r.get("cudnn")]])


def ceiling_table(rows: list[dict]) -> list[str]:
    def rate(r):
        if "gb_per_s" in r:
            return f"{r['gb_per_s']:.0f} GB/s" + (f" ({100 * r['bandwidth_share']:.0f}% of the datasheet)"
                                                   if "bandwidth_share" in r else "")
        return f"{r['tflop_per_s']:.0f} TFLOP/s" + (f" ({100 * r['flops_share']:.0f}% of the datasheet)"
                                                    if "flops_share" in r else "")

    return _table(["ceiling", "ms", "measured"], [[r["case"], f"{r['ms']:.3f}", rate(r)] for r in rows if "ms" in r])


def pytest_table(rows: list[dict]) -> list[str]:
    tests = [r for r in rows if "outcome" in r]
    counts = {k: sum(r["outcome"] == k for r in tests) for k in ("passed", "failed", "error", "skipped")}
    lines = ["`pytest -m gpu`: " + ", ".join(f"{n} {k}" for k, n in counts.items())]
    failing = [[r["case"], r["outcome"], r.get("message", "")[:160]] for r in tests if r["outcome"] in ("failed",
                                                                                                        "error")]
    return lines + (["", *_table(["test", "outcome", "message"], failing)] if failing else [])


def graph_table(rows: list[dict]) -> list[str]:
    def verdict(r):
        if "error" in r:
            return f"capture or replay failed: {r['error'][:120]}"
        return "bitwise equal" if r.get("bitwise_equal") else "differs"

    return _table(["call (forward+backward)", "replay vs eager", "max abs diff", "eager ms", "graph ms"],
                  [[r["case"], verdict(r), f"{r['max_abs_diff']:.3g}" if "max_abs_diff" in r else None,
                    f"{r['eager_ms']:.3f}" if "eager_ms" in r else None,
                    f"{r['graph_ms']:.3f}" if "graph_ms" in r else None] for r in rows])


def top_kernels_table(rows: list[dict]) -> list[str]:
    kernels = [r for r in rows if "rank" in r]
    return _table(["#", "kernel", "family", "ms/step", "calls/step"],
                  [[r["rank"], r["case"][:100].replace("|", "/"), r["family"], f"{r['ms_per_step']:.3f}",
                    f"{r['calls_per_step']:g}"] for r in kernels]) + _unmeasured(rows)


TABLES = {"gpu_session": session_table, "environment": environment_table, "compile_cache": compile_cache_table,
          "ceiling": ceiling_table, "pytest": pytest_table, "cuda_graph": graph_table,
          "top_kernels": top_kernels_table}


def step_table(all_rows: list[dict]) -> list[str]:
    rows = [r for r in all_rows if "ms" in r]
    eager = next((r for r in rows if r["provider"] == "eager"), None)
    lines = ["| provider | ms/step | images/s | vs eager | peak GiB | top kernel families (ms/step) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{eager['ms'] / r['ms']:.2f}x" if eager else "-"
        families = ", ".join(f"{name} {ms:.1f}" for name, ms in list(r.get("family_ms", {}).items())[:4])
        lines.append(f"| {r['provider']} | {r['ms']:.1f} | {r['images_per_s']:.1f} | {ratio} | "
                     f"{_gib(r['peak_memory_bytes'])} | {families} |")
    return lines + _unmeasured(all_rows)


def section() -> str:
    files = sorted(RESULTS_DIR.glob("*.jsonl"))
    if not files:
        return NO_RESULTS
    parts = []
    for path in files:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        runs = latest_runs(rows)
        for op in sorted(runs, key=lambda op: SECTION_ORDER.index(op) if op in SECTION_ORDER else len(SECTION_ORDER)):
            run = runs[op]
            first = run[0]
            parts.append(f"**{op}** on {first['device']}, {first['date'][:10]}, commit {first['commit']} "
                         f"(torch {first['torch']}, triton {first['triton']})\n")
            parts += TABLES.get(op, step_table if op == "training_step" else op_table)(run)
            plot = path.with_name(f"{path.stem}_{op}.png")
            if plot.exists():
                parts.append(f"\n![{op} on {first['device']}]({plot.relative_to(ROOT)})")
            parts.append("")
    return "\n".join(parts).strip()


def replace_readme_section(start: str, end: str, text: str, readme: Path | None = None) -> None:
    """Rewrite what lies between the marker comments `start` and `end` of `readme` (default: the module's README,
    looked up at the call) with `text`: a generated section."""
    readme = README if readme is None else readme
    content = readme.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{readme} lacks the markers {start} ... {end}")
    before, rest = content.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{start}\n{text}\n{end}{after}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the section instead of writing README.md")
    args = parser.parse_args(argv)
    text = section()
    if args.print:
        print(text)
        return
    replace_readme_section(START, END, text)
    print(f"README.md results section rewritten from {len(list(RESULTS_DIR.glob('*.jsonl')))} result file(s)")


if __name__ == "__main__":
    main()
