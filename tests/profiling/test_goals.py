"""The README's goals tables (profiling/goals.py): generated from the committed static reports, and each goal counts
the op calls its issue names; the host table sets a GPU session's host times beside the report's."""

import json

from profiling import goals
from profiling.static_report import GOALS_END, GOALS_START, OUT_DIR, README, per_call, read_report


def test_readme_goals_are_generated_from_the_committed_reports():
    text = README.read_text()
    section = text[text.index(GOALS_START) + len(GOALS_START):text.index(GOALS_END)]
    assert section.strip() == goals.goals_section().strip(), "run `make static-report` (or --readme) to regenerate it"


def test_each_goal_counts_the_calls_its_issue_names():
    """Per direction, the calls each selector takes from the step: the ATT block at stride 4 has two window attentions
    (plain and shifted), FPMA three (one per scale), CTAM at stride 4 one batched call, the linear attention ten, the
    aggregation and each classifier one (the aggregation runs three times per step: one call, three calls per step)."""
    _, records = read_report(OUT_DIR / f"triton-{goals.AGAINST_EAGER_TRITON}.jsonl")
    calls = per_call(records)

    def count(selected) -> int:
        return sum(selected(op, case) for op, case, direction in calls if direction == "fwd")

    expected = {goals.att_stride_4: 2, goals.fpma: 3, goals.ctam_stride_4: 1, goals.linear_attention: 10,
                goals.aggregation: 1}
    for selected, number in expected.items():
        assert count(selected) == number, selected.__name__
    assert all(count(goals.classifier(n)) == 1 for n in (40, 3, 1))
    for goal in goals.GOALS:
        assert all(count(selected) for selected, _ in goal.parts), goal.label


def test_the_host_table_sets_measured_host_times_beside_the_reports(tmp_path):
    """A GPU session's host rows (the aggregation forward within the goal, its backward over it; a dry run's row never)
    fill the measured columns of their kind of call and count against the goal; kinds without rows show none."""
    _, records = read_report(OUT_DIR / f"triton-{goals.AGAINST_EAGER_TRITON}.jsonl")
    (case,) = {case for op, case, _ in per_call(records) if goals.aggregation(op, case)}
    row = dict(op="host_time", subject="concat_conv1x1", case=case, provider="triton", date="2026-12-08")
    rows = [dict(row, mode="fwd", host_us=30.4), dict(row, mode="bwd", host_us=120.0),
            dict(row, mode="bwd", host_us=10.0, dry_run=True)]
    (tmp_path / "device.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = goals.host_lines(OUT_DIR, tmp_path)

    def cells(label: str) -> list[str]:
        line = next(line for line in lines if line.startswith(f"| {label} |"))
        return [cell.strip() for cell in line.split("|")[2:-1]]

    aggregation = cells("concat conv, aggregation")
    assert aggregation[2:4] == ["30", "120"] and aggregation[4] == "0 of 2 / 1 of 2"
    window = cells("window attention")
    assert window[2:4] == ["-", "-"] and window[4].endswith("of 22 / -")  # 11 calls, forward and backward


def test_the_step_host_table_sums_its_ops():
    """The per-step host table: a row per op, and the three together (launches, host and GPU time summed)."""
    lines = goals.host_lines()
    start = lines.index("| op | Triton launches | host | predicted GPU |")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[start + 2:]]
    *ops, together = rows
    assert [row[0] for row in ops] == ["window_attention", "linear_cross_attention", "concat_conv1x1"]
    assert together[0] == "the three ops"
    for column in (1, 2, 3):  # (each rounded to whole us: the sum of the rounded within one per op)
        parts = sum(float(row[column].replace(",", "")) for row in ops)
        assert abs(float(together[column].replace(",", "")) - parts) <= len(ops)
    launches_per_step = {"window_attention": 33, "linear_cross_attention": 66}  # 11 calls x 3; 10 calls, 6-7 each
    assert {row[0]: int(row[1]) for row in ops[:2]} == launches_per_step
