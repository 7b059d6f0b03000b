"""Training runs end to end: exact resume, DDP, and what a run leaves on disk."""

import datetime
import json
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sca_mtl.cli import main
from sca_mtl.config import apply_overrides
from sca_mtl.engine import runs
from sca_mtl.engine.checkpoint import load_checkpoint
from sca_mtl.models import MODELS

ADAM_STEP_RTOL = 1e-3  # losses of two runs after one Adam step (see the compiled-training test)


def _train(config, out, max_steps, resume=False):
    config = apply_overrides(config, [f"train.max_steps={max_steps}"])
    return runs.train(config, out, resume=resume, progress=False).state_dict()


@pytest.mark.slow
def test_resume_is_bitwise_exact(tiny_config, tmp_path):
    """4 steps straight == 2 steps, stop, resume, 2 more (mid-epoch stop; the 4th step is in the next epoch; stochastic
    depth and augmentation both draw random numbers)."""
    straight = _train(tiny_config, tmp_path / "straight", 4)
    _train(tiny_config, tmp_path / "resumed", 2)
    resumed = _train(tiny_config, tmp_path / "resumed", 4, resume=True)
    assert straight.keys() == resumed.keys()
    different = [key for key in straight if not torch.equal(straight[key], resumed[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_run_leaves_log_checkpoints_and_curves(tiny_config, tmp_path):
    _train(tiny_config, tmp_path, 3)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert len(train[0]["losses"]) == 1 + 15  # total + 3 tasks x (final + 4 deep-supervision scales)
    assert train[0]["images_per_s"] > 0
    assert len(evals) == 1 and set(evals[0]["metrics"]) == {"semseg", "depth", "normals"}
    assert evals[0]["delta_m_baseline"] == "trivial"
    for name in ("last.pt", "best.pt", "training_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert (checkpoint["step"], checkpoint["epoch"], checkpoint["step_in_epoch"]) == (3, 1, 0)


def test_auxiliary_tasks_are_trained_not_evaluated(tiny_config, tmp_path):
    """MTI-Net with edge as an auxiliary task: its deep-supervision terms are logged, its metrics are not asked for."""
    config = apply_overrides(tiny_config, ["model.name=mti_net", "tasks={semseg: 10, depth: 1}",
                                           "auxiliary_tasks={edge: 1}", "loss_weights={}", "train.kernels=torch"])
    _train(config, tmp_path, 1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train, evaluation = records[0], records[-1]
    assert len(train["losses"]) == 1 + 2 + 4 * 3 and "deep_supervision/scale_0/edge" in train["losses"]
    assert set(evaluation["metrics"]) == {"semseg", "depth"}


def test_edge_trains_and_is_scored(tiny_config, tmp_path):
    """The boundary task on the synthetic scenes' edges: its loss terms are logged and its evaluation has SEISM's
    scores, scored against the trivial predictor's in Δm like every task."""
    config = apply_overrides(tiny_config, ["tasks={semseg: 10, edge: 1}", "loss_weights={}", "train.kernels=torch"])
    _train(config, tmp_path, 1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train, evaluation = records[0], records[-1]
    assert "edge" in train["losses"] and "deep_supervision/scale_3/edge" in train["losses"]
    assert set(evaluation["metrics"]["edge"]) == {"odsF", "oisF", "AP"}
    assert all(0 <= value <= 100 for value in evaluation["metrics"]["edge"].values())
    # a constant map has no boundary: the trivial predictor's odsF is 0, and edge is left out of its Δm
    assert evaluation["baseline"]["edge"] == 0 and evaluation["delta_m_left_out"] == ["edge"]
    assert evaluation["delta_m_baseline"] == "trivial" and math.isfinite(evaluation["delta_m"])


DDP_TIMEOUT = datetime.timedelta(minutes=5)  # a collective that waits longer fails the test rather than hanging it


def _ddp_worker(rank, world_size, config, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    # The group joins through a file, not a TCP port picked free beforehand (another process may take it first);
    # `distributed.setup` then finds it joined and reads torchrun's variables as under torchrun.
    dist.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=world_size,
                            timeout=DDP_TIMEOUT)
    torch.set_num_threads(1)
    # 6 training images: 3 per process, one batch of 2 per epoch; the 2 steps cross an epoch boundary. The evaluation
    # takes one image per batch, as the check in one process then does: a CPU convolution's float32 sums may follow
    # the batch size (torch 2.11's moved log-RMSE by 4e-6 between batches of 1 and 2).
    model = runs.train(apply_overrides(config, ["train.max_steps=2", "eval.batch_size=1"]), out / "run",
                       progress=False)
    torch.save(model.state_dict(), out / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_is_one_model(tiny_config, tmp_path):
    """Two gloo processes end with the same parameters and BatchNorm statistics, and the metrics the run logs are
    those of its saved checkpoint evaluated alone in one process, exactly (the same images per batch and threads per
    process; the meters' float64 sums then add the two processes' parts in one order)."""
    mp.spawn(_ddp_worker, args=(2, tiny_config, tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(torch.equal(ranks[0][name], ranks[1][name]) for name in ranks[0])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]  # one writer: rank 0
    logged = [r for r in records if r["kind"] == "eval"][-1]["metrics"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: a CPU convolution's float32 sums follow the thread count
    try:
        alone = runs.evaluate_checkpoint(tmp_path / "run" / "last.pt", tmp_path / "eval")[0]["metrics"]
    finally:
        torch.set_num_threads(threads)
    assert alone == logged, (alone, logged)


@pytest.mark.slow
def test_compiled_training_follows_eager_training(tiny_overrides, tmp_path, monkeypatch):
    """`sca-mtl train --compile` trains the torch.compile'd network: the same losses as eager training from the same
    seed, and checkpoints of the plain model. The compiler backend here is aot_eager (the traced forward and backward
    graphs run op by op): Inductor's C++ build on a 2-core CPU would dominate the test suite."""
    compiled = []

    def compile_for_the_test(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="aot_eager", **kwargs)

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", compile_for_the_test)
    # No stochastic depth (random draws to tell apart); 64 x 96 images: at 32 x 32 the coarsest maps are 1 x 1, and a
    # train-mode BatchNorm over 2 values turns rounding differences into sign flips.
    overrides = [*tiny_overrides, "model.options.att_drop_path=0.0", "data.size=[64, 96]"]
    losses = {}
    for run, flags in (("eager", []), ("compiled", ["--compile"])):
        assert main(["train", "--config", "synthetic_sca_mtl", "--out", str(tmp_path / run), "--max-steps", "2",
                     "--no-progress", *flags, *overrides]) == 0
        records = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        losses[run] = [r["losses"]["total"] for r in records if r["kind"] == "train"]

    assert len(compiled) == 1
    state = load_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    assert not any(key.startswith("_orig_mod") for key in state)
    first, second = zip(losses["eager"], losses["compiled"], strict=True)
    assert first[1] == pytest.approx(first[0], rel=1e-6)  # the same weights: one forward, to float32 rounding
    # After one Adam step: a parameter whose gradient is rounding noise moves by about +-lr either way, so the second
    # losses differ by more than rounding (measured: 4e-5 relative), and far less than one step's progress (20%).
    assert second[1] == pytest.approx(second[0], rel=ADAM_STEP_RTOL)


def test_optimizer_from_the_config():
    from sca_mtl.config import DEFAULTS
    from sca_mtl.engine.trainer import build_optimizer

    layer = torch.nn.Linear(2, 2)
    sgd = build_optimizer(layer, {**DEFAULTS["optim"], "optimizer": "sgd", "lr": 0.01})
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9 and not sgd.defaults["nesterov"]
    assert isinstance(build_optimizer(layer, DEFAULTS["optim"]), torch.optim.Adam)
    with pytest.raises(ValueError, match="optim.optimizer must be adam or sgd, got 'rmsprop'"):
        build_optimizer(layer, {**DEFAULTS["optim"], "optimizer": "rmsprop"})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_a_step_and_evaluates(name, tiny_config, tmp_path):
    """One step and the final evaluation of every registered model (each on its own backbone), on the CPU
    references."""
    tasks = "{semseg: 10}" if getattr(MODELS[name], "max_tasks", None) == 1 else "{semseg: 10, depth: 1}"
    config = apply_overrides(tiny_config, [f"model.name={name}", "model.backbone=null", f"tasks={tasks}",
                                           "loss_weights={}", "train.kernels=torch"])
    _train(config, tmp_path, 1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "train" and all(v is not None for v in records[0]["losses"].values())
    assert records[-1]["kind"] == "eval" and set(records[-1]["metrics"]) == set(config["tasks"])
