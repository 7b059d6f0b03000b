"""`sca-mtl compare`: the final metrics of several training runs side by side, as the paper's tables print them.

Each run folder (what `sca-mtl train` writes) gives its final evaluation (the last "eval" record of metrics.jsonl),
its parameter count and config (run.json, or the config stored in last.pt for runs older than run.json) and its
training speed (the median images/s of its "train" records). With a single-task results file (`sca-mtl single-task`),
every run gets Δm against it and the file's own row; rows the paper printed can be added for side by side reading.
The comparison is written as compare.md, compare.csv and, with Δm, a bar plot compare_delta_m.png.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ..metrics import delta_m, headline_metrics, load_single_task_results
from ..tasks import TASKS
from ..visualize import save_delta_m_bars
from .checkpoint import load_checkpoint
from .trainer import LAST, METRICS_LOG, RUN_INFO, read_log

PAPER_RESULTS = Path(__file__).resolve().parent.parent / "paper_results.yaml"
COMPARE_TABLE, COMPARE_CSV, COMPARE_PLOT = "compare.md", "compare.csv", "compare_delta_m.png"
SINGLE_TASK_ROW = "single task"
PAPER_SUFFIX = " (paper)"
MILLION = 1e6


@dataclass(frozen=True)
class Row:
    """One line of the comparison. metrics: {task: {metric: value}}; the optional fields are None where unknown."""

    label: str
    model: str
    metrics: Mapping[str, Mapping[str, float]]
    delta_m: float | None = None
    parameters: int | None = None
    images_per_s: float | None = None


@dataclass(frozen=True)
class Comparison:
    dataset: str
    tasks: tuple[str, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()


def _run_info(run_dir: Path) -> dict:
    """{"config": ..., "parameters": n or None} from run.json, or the config of last.pt."""
    path = run_dir / RUN_INFO
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
    return {"config": load_checkpoint(run_dir / LAST, required=("config",))["config"], "parameters": None}


def read_run(run_dir: str | Path, label: str) -> tuple[dict, Row]:
    """(config, row without Δm) of one training run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if not (run_dir / METRICS_LOG).is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder: it has no {METRICS_LOG}")
    records = read_log(run_dir)
    evaluations = [r for r in records if r.get("kind") == "eval"]
    if not evaluations:
        raise ValueError(f"{run_dir} has no evaluation yet ({METRICS_LOG} holds no eval record)")
    info = _run_info(run_dir)
    speeds = [r["images_per_s"] for r in records if r.get("kind") == "train"]
    row = Row(label, info["config"]["model"]["name"], evaluations[-1]["metrics"],
              parameters=info.get("parameters"), images_per_s=statistics.median(speeds) if speeds else None)
    return info["config"], row


def _same_setting(runs: Sequence[tuple[str, dict]]) -> tuple[str, dict]:
    """The dataset and tasks every run shares; ValueError naming the first run that differs."""
    (first, config), *others = runs
    for name, other in others:
        for what, key in (("dataset", lambda c: c["data"]["dataset"]), ("tasks", lambda c: c["tasks"])):
            if key(other) != key(config):
                raise ValueError(f"runs on different {what} cannot be compared: {first} has {key(config)}, "
                                 f"{name} has {key(other)}")
    return config["data"]["dataset"], dict(config["tasks"])


def _single_task_row(path: str | Path, tasks: Sequence[str]) -> tuple[Row, dict[str, float]]:
    """The single-task file's row (all its metrics where it stores them) and its headline metrics for `tasks`."""
    headline = load_single_task_results(path)
    missing = [task for task in tasks if task not in headline]
    if missing:
        raise ValueError(f"single-task results file {path} lacks the tasks {missing} of the runs")
    data = json.loads(Path(path).read_text())
    metrics = {task: dict(data[task]) if isinstance(data[task], Mapping) else {TASKS[task].metric: headline[task]}
               for task in tasks}
    parameters = data.get("parameters")
    total = sum(parameters[task] for task in tasks) if isinstance(parameters, Mapping) else None
    return Row(SINGLE_TASK_ROW, "single_task", metrics, delta_m=0.0, parameters=total), {t: headline[t] for t in tasks}


def paper_table(name_or_path: str) -> dict:
    """A table of paper_results.yaml by name (table1..table5), or a YAML file of the same layout."""
    tables = yaml.safe_load(PAPER_RESULTS.read_text())
    if name_or_path in tables:
        return tables[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"paper table {name_or_path!r} is neither one of {', '.join(tables)} nor a file")
    try:
        table = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(table, Mapping) or not isinstance(table.get("rows"), Mapping):
        raise ValueError(f"{path} must hold a mapping with `rows` ({{label: {{task: value, delta_m: value}}}})")
    return table


def _paper_rows(table: Mapping, dataset: str, tasks: Sequence[str]) -> list[Row]:
    rows = []
    for label, entry in table["rows"].items():
        printed = {key: value for key, value in entry.items() if key != "delta_m"}
        if set(printed) != set(tasks) or table.get("dataset", dataset) != dataset:
            raise ValueError(f"paper row {label!r} is on {table.get('dataset')} {sorted(printed)}, the runs on "
                             f"{dataset} {sorted(tasks)}")
        metrics = {task: dict(value) if isinstance(value, Mapping) else {TASKS[task].metric: value}
                   for task, value in printed.items()}
        rows.append(Row(label + PAPER_SUFFIX, "", metrics, delta_m=entry.get("delta_m")))
    return rows


def compare(
    run_dirs: Sequence[str | Path], *, single_task: str | Path | None = None, paper: str | None = None
) -> Comparison:
    """The runs' comparison, with Δm against `single_task` (a results file) and the `paper` table's rows."""
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    paths = [Path(d) for d in run_dirs]
    names = [p.name for p in paths]
    labels = [p.name if names.count(p.name) == 1 else str(p) for p in paths]
    runs = [read_run(path, label) for path, label in zip(paths, labels)]
    dataset, tasks = _same_setting([(str(path), config) for path, (config, _) in zip(paths, runs)])
    rows = [row for _, row in runs]
    notes = []
    if single_task is not None:
        single_row, baseline = _single_task_row(single_task, list(tasks))
        rows = [single_row] + [replace(r, delta_m=delta_m(headline_metrics(r.metrics), baseline))
                               for r in rows]
        notes.append(f"Δm against the single-task results of {single_task}.")
    else:
        notes.append("No single-task results given (--single-task): no Δm.")
    if paper is not None:
        table = paper_table(paper)
        rows += _paper_rows(table, dataset, list(tasks))
        notes.append(f"Rows marked{PAPER_SUFFIX} are printed in the paper ({table.get('caption', paper)}); "
                     "their Δm is against the paper's own baseline.")
    return Comparison(dataset, tuple(tasks), tuple(rows), tuple(notes))


def _columns(comparison: Comparison) -> list[tuple[str, str]]:
    """(task, metric) columns: each task's headline metric first, then the others in the order the runs report."""
    columns = []
    for task in comparison.tasks:
        metrics = [TASKS[task].metric]
        for row in comparison.rows:
            metrics += [m for m in row.metrics.get(task, {}) if m not in metrics]
        columns += [(task, metric) for metric in metrics]
    return columns


def _header(task: str, metric: str) -> str:
    if metric != TASKS[task].metric:
        return f"{task} {metric}"
    return f"{task} {metric} {'↑' if TASKS[task].higher_is_better else '↓'}"


def _cells(comparison: Comparison, row: Row) -> list[object]:
    """The row's values in column order (None where unknown); parameters in millions."""
    values = [row.metrics.get(task, {}).get(metric) for task, metric in _columns(comparison)]
    parameters = None if row.parameters is None else row.parameters / MILLION
    return [row.label, row.model, *values, row.delta_m, parameters, row.images_per_s]


def _headers(comparison: Comparison) -> list[str]:
    return ["run", "model", *(_header(t, m) for t, m in _columns(comparison)), "Δm % ↑", "parameters (M)",
            "train images/s"]


def _format(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(comparison: Comparison) -> str:
    headers = _headers(comparison)
    delta_column = headers.index("Δm % ↑")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in comparison.rows:
        cells = [_format(v) for v in _cells(comparison, row)]
        if row.delta_m is not None:
            cells[delta_column] = f"{row.delta_m:+.2f}"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{comparison.dataset}, tasks {', '.join(comparison.tasks)}. " + " ".join(comparison.notes)]
    return "\n".join(lines) + "\n"


def csv_text(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_headers(comparison))
    for row in comparison.rows:
        writer.writerow(["" if v is None else v for v in _cells(comparison, row)])
    return out.getvalue()


def write_comparison(comparison: Comparison, out_dir: str | Path) -> list[Path]:
    """compare.md, compare.csv and (when any row has Δm) compare_delta_m.png in `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / COMPARE_TABLE, out_dir / COMPARE_CSV]
    written[0].write_text(markdown(comparison))
    written[1].write_text(csv_text(comparison))
    bars = [(row.label, row.delta_m, row.label.endswith(PAPER_SUFFIX)) for row in comparison.rows
            if row.delta_m is not None]
    if bars:
        save_delta_m_bars(bars, f"{comparison.dataset}: {', '.join(comparison.tasks)}", out_dir / COMPARE_PLOT)
        written.append(out_dir / COMPARE_PLOT)
    return written
