"""Where the kernel issues' goals stand, read from the static reports (profiling/static_report.py): each goal is the
ratio of today's predicted time to the kept baseline's over a set of the model's op calls, per Triton version
(`GOALS`, from issues 13-15), and our predicted time against the eager run's traced bound (`AGAINST_EAGER`). The
README's goals tables are generated from them (`goals_section`). Predictions, not measurements.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profiling.host_time import HOST_GOAL_US
from profiling.static_report import (
    DIRECTIONS,
    MEASURED_DIR,
    OUT_DIR,
    baseline_path,
    measured_host_us,
    per_call,
    read_report,
)

Selector = Callable[[str, str], bool]  # (op, case) -> whether the goal counts that op call
README_WIDTH = 118  # the README's prose line width


def att_stride_4(op: str, case: str) -> bool:  # the two window attentions of the ATT block at stride 4
    return case.startswith("window_attention/120x160-c18-h6")


def fpma(op: str, case: str) -> bool:  # the FPMA blocks' window attentions (4 heads)
    return op == "window_attention" and case.endswith("-h4")


def ctam_stride_4(op: str, case: str) -> bool:  # CTAM's batched linear attention at stride 4
    return case == "linear_cross_attention/b48-d36-19200"


def linear_attention(op: str, case: str) -> bool:
    return op == "linear_cross_attention"


def aggregation(op: str, case: str) -> bool:  # the per-task aggregation (13 maps at 4 resolutions)
    return case.startswith("concat_conv1x1/13in")


def classifier(out_channels: int) -> Selector:
    return lambda op, case: case == f"concat_conv1x1/1in-120x160-1080to{out_channels}"


@dataclass(frozen=True)
class Goal:
    """A row of the goals table: its label and its parts, each (calls, directions), shown as the ratio of today's step
    total to the baseline's or (`against_eager`) as today's time per call beside the eager prediction's."""

    label: str
    parts: tuple
    against_eager: bool = False


FWD, BWD = ("fwd",), ("bwd",)
GOALS = (
    Goal("ATT stride-4 forward <= 0.33x (#14)", ((att_stride_4, FWD),)),
    Goal("ATT stride-4 backward <= 0.5x (#14)", ((att_stride_4, BWD),)),
    Goal("FPMA forward, backward <= 0.5x (#14)", ((fpma, FWD), (fpma, BWD))),
    Goal("CTAM stride-4 forward, backward <= 0.5x (#15)", ((ctam_stride_4, FWD), (ctam_stride_4, BWD))),
    Goal("the step's 10 linear attention calls <= 0.5x (#15)", ((linear_attention, DIRECTIONS),)),
    Goal("aggregation forward <= 0.5x (#13)", ((aggregation, FWD),)),
    Goal("aggregation forward below the eager prediction (#13)", ((aggregation, FWD),), against_eager=True),
    Goal("aggregation backward <= 0.6x (#13)", ((aggregation, BWD),)),
    Goal("classifier forwards <= 0.6x (#13): 1080 -> 40, 3, 1", tuple((classifier(n), FWD) for n in (40, 3, 1))),
)
# Ours against the eager run's traced bound, us per step (the aggregation per call), for one Triton version: the one
# `make test` installs today.
AGAINST_EAGER = (
    ("ATT stride 4 (2 calls, #14)", att_stride_4, False),
    ("FPMA (3 calls, #14)", fpma, False),
    ("CTAM stride 4 (#15)", ctam_stride_4, False),
    ("aggregation (per call, #13)", aggregation, True),
)
AGAINST_EAGER_TRITON = "3.8.0"
# The host goal's op calls, by kind (issue 13 names the concat conv's calls, issue 15 the linear attention's; the
# window attention's are shown beside them)
HOST_GROUPS = (
    ("window attention", lambda op, case: op == "window_attention"),
    ("concat conv, classifiers", lambda op, case: case.startswith("concat_conv1x1/1in")),
    ("concat conv, aggregation", aggregation),
    ("linear attention, batched (up to 18 parts)", linear_attention),
)


def _total(calls: dict, selected: Selector, directions: tuple, field: str = "predicted_us",
           each_call: bool = False) -> float:
    """`field` summed over the selected op calls in `directions`: per step (times each call's calls per step), or
    per call."""
    return sum(entry[field] * (1 if each_call else entry["calls_per_step"])
               for (op, case, direction), entry in calls.items() if direction in directions and selected(op, case))


def _cell(goal: Goal, calls: dict, baseline: dict) -> str:
    if goal.against_eager:
        return ", ".join(f"{_total(calls, s, d, each_call=True):,.0f} us (eager "
                         f"{_total(calls, s, d, 'eager_us', each_call=True):,.0f})" for s, d in goal.parts)
    return ", ".join(f"{_total(calls, s, d) / _total(baseline, s, d):.2f}x" for s, d in goal.parts)


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, README_WIDTH, break_on_hyphens=False)


def _span(values: list[float]) -> str:
    """The range of `values` in whole us ("-" for none)."""
    if not values:
        return "-"
    low, high = round(min(values)), round(max(values))
    return f"{low}" if low == high else f"{low}-{high}"


def host_lines(out_dir: Path = OUT_DIR, results_dir: Path = MEASURED_DIR) -> list[str]:
    """The host goal's table: per kind of op call and direction, the range of host times per call in the report of
    AGAINST_EAGER_TRITON (this CPU: through Triton's dispatch, no launch; our launchers alone and the autograd floor in
    parentheses) and as measured by a GPU session (the GPU machine's CPU, launches real), and how many calls are
    within HOST_GOAL_US (here: with Triton's dispatch)."""
    head, records = read_report(out_dir / f"triton-{AGAINST_EAGER_TRITON}.jsonl")
    calls, measured = per_call(records), measured_host_us(results_dir)
    lines = [*_wrapped(f"Host time per op call, us (goal: at most {HOST_GOAL_US:.0f}, #13 and #15). Here: one thread "
                       f"of {head['host_cpu']} ({head['date']}, the triton {AGAINST_EAGER_TRITON.rsplit('.', 1)[0]} "
                       "report), each launch through Triton's own dispatch but not launched; in parentheses our "
                       "launchers alone (the launches intercepted) and the autograd floor. Measured: the GPU "
                       "machine's CPU, the launches real (bench/gpu_session.py, unit host), where a session ran:"), "",
             "| op calls | forward here (ours; floor) | backward here (ours; floor) | forward measured "
             "| backward measured | calls x directions within the goal, here / measured |",
             "|---|---|---|---|---|---|"]
    for label, selected in HOST_GROUPS:
        mine = {key: entry for key, entry in calls.items() if selected(*key[:2])}
        cells = []
        for direction in DIRECTIONS:
            entries = [entry for key, entry in mine.items() if key[2] == direction]
            spans = [_span([e[field] for e in entries]) for field in ("host_dispatch_us", "host_us", "host_floor_us")]
            cells.append(f"{spans[0]} ({spans[1]}; {spans[2]})")
        times = {direction: [measured[key[1:]] for key in mine if key[2] == direction and key[1:] in measured]
                 for direction in DIRECTIONS}
        cells += [_span(times[direction]) for direction in DIRECTIONS]
        within_here = sum(entry["host_dispatch_us"] <= HOST_GOAL_US for entry in mine.values())
        within_measured = sum(t <= HOST_GOAL_US for values in times.values() for t in values)
        measured_count = sum(map(len, times.values()))
        cells.append(f"{within_here} of {len(mine)} / "
                     + (f"{within_measured} of {measured_count}" if measured_count else "-"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, "", *_step_host_lines(calls)]


def _step_host_lines(calls: dict) -> list[str]:
    """Per op and for the three together, per training step: Triton launches, host time with Triton's dispatch and
    the predicted GPU time (both directions, each call times its calls per step): where the host takes longer, the op
    keeps the GPU waiting unless the rest of the step queues enough work ahead of it."""
    ops = list(dict.fromkeys(op for op, _, _ in calls))
    lines = [*_wrapped("Per training step, the same report: our ops' host time with Triton's dispatch against their "
                       "predicted GPU time (forward and backward, us per step):"), "",
             "| op | Triton launches | host | predicted GPU |", "|---|---|---|---|"]
    for label, chosen in [*((op, [op]) for op in ops), ("the three ops", ops)]:
        launches, host, gpu = (_total(calls, lambda op, case, chosen=chosen: op in chosen, DIRECTIONS, field)
                               for field in ("launches", "host_dispatch_us", "predicted_us"))
        lines.append(f"| {label} | {launches} | {host:,.0f} | {gpu:,.0f} |")
    return lines


def goals_section(out_dir: Path = OUT_DIR, results_dir: Path = MEASURED_DIR) -> str:
    """The README's goals tables, from the reports in `out_dir` and their kept baselines."""
    versions = sorted((read_report(path)[0]["triton"], path) for path in out_dir.glob("triton-*.jsonl"))
    calls = {version: per_call(read_report(path)[1]) for version, path in versions}
    baselines = {version: per_call(read_report(baseline_path(version, out_dir))[1]) for version, _ in versions}
    names = [version.rsplit(".", 1)[0] for version, _ in versions]
    lines = [*_wrapped(f"Where the issues' goals stand (predictions: the ratio of today's `predicted_us` to the "
                       f"baseline's, triton {' / '.join(names)}):"), "",
             "| goal (issue) | " + " | ".join(f"triton {name}" for name in names) + " |",
             "|---|" + "---|" * len(names)]
    lines += [f"| {goal.label} | " + " | ".join(_cell(goal, calls[v], baselines[v]) for v, _ in versions) + " |"
              for goal in GOALS]
    mine = calls[AGAINST_EAGER_TRITON]
    lines += ["", *_wrapped("Against the reference's eager run (its kernels traced, each at its roofline: a bound that "
                            "favours eager; the same for every Triton version), ours on triton "
                            f"{AGAINST_EAGER_TRITON.rsplit('.', 1)[0]}, us per step:"), "",
              "| op calls | forward: ours / eager | backward: ours / eager |", "|---|---|---|"]
    for label, selected, per_call_only in AGAINST_EAGER:
        cells = [f"{_total(mine, selected, d, each_call=per_call_only):,.0f} / "
                 f"{_total(mine, selected, d, 'eager_us', per_call_only):,.0f}" for d in (FWD, BWD)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join([*lines, "", *host_lines(out_dir, results_dir)])
