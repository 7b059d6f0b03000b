"""What a run does with bad inputs and crashes, from the outside: one-line errors (exit status 2) before anything is
trained or written, refused damaged checkpoints, bad data files named, a non-finite loss stopped, and a process killed
while writing a checkpoint resumed into the run that never stopped."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sca_mtl.cli import main
from sca_mtl.engine import runs
from sca_mtl.engine.checkpoint import MAGIC, atomic_save, load_checkpoint
from sca_mtl.engine.trainer import _json_line


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def train_argv(out, tiny_overrides, *extra):
    return ["train", "--config", "synthetic_sca_mtl", "--out", str(out), "--no-progress", "--kernels", "torch",
            *tiny_overrides, *extra]


@pytest.mark.parametrize(
    "extra, words",
    [(["train.batch_size=0"], "train.batch_size must be an integer >= 1, got 0"),
     (["train.batch_size="], "train.batch_size must be an integer >= 1, got None"),
     (["train.seed="], "train.seed must be an integer >= 0, got None"),
     (["train.log_every=0"], "train.log_every must be an integer >= 1"),
     (["optim.epochs=0"], "optim.epochs must be an integer >= 1, got 0"),
     (["optim.epochs=-2"], "optim.epochs must be an integer >= 1, got -2"),
     (["--max-steps", "-1"], "train.max_steps must be an integer >= 1, got -1"),
     (["optim.lr=0"], "optim.lr must be a number > 0.0"),
     (["optim.optimizer=rmsprop"], "optim.optimizer must be one of adam, sgd"),
     (["data.size=[40, 64]"], "data.size must be [H, W], positive multiples of 32"),
     (["model.options.foo=1"], "'sca_mtl' does not take the options ['foo']"),
     (["optim.lr=[1,"], "value is not valid YAML (while parsing a flow"),
     (["eval.single_task_results=/no/such.json"], "/no/such.json does not exist")],
)
def test_bad_settings_fail_before_anything_is_written(capsys, tmp_path, tiny_overrides, extra, words):
    out = tmp_path / "run"
    err = one_line_error(capsys, train_argv(out, tiny_overrides, *extra))
    assert words in err, err
    assert not out.exists()


def test_overrides_may_come_between_options(tmp_path, tiny_overrides):
    out = tmp_path / "run"
    root = next(o for o in tiny_overrides if o.startswith("data.root=")).partition("=")[2]
    rest = [o for o in tiny_overrides if not o.startswith("data.root=")]
    assert main(["train", "--config", "synthetic_sca_mtl", "--out", str(out), "optim.poly_power=0.5", "--data-root",
                 root, "--no-progress", *rest, "--max-steps", "1", "--kernels", "torch"]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["optim"]["poly_power"] == 0.5


def test_an_unwritable_out_folder_fails_before_training(capsys, tmp_path, tiny_overrides):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = one_line_error(capsys, train_argv(blocker / "run", tiny_overrides))
    assert str(blocker) in err


def test_make_synthetic_refusals(capsys, tmp_path, tiny_root):
    assert "already holds a dataset" in one_line_error(capsys, ["make-synthetic", "--out", str(tiny_root), "--n", "4"])
    assert "n must be >= 2" in one_line_error(capsys, ["make-synthetic", "--out", str(tmp_path / "one"), "--n", "1"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_root):
    """A 2-step run of SCA-MTL on the tiny set (module-scoped: several tests read it, none changes it)."""
    from sca_mtl.config import load_config
    from sca_mtl.data.synthetic import CLASSES

    out = tmp_path_factory.mktemp("finished") / "run"
    config = load_config("synthetic_sca_mtl", [f"data.root={tiny_root}", "data.size=[32, 32]", "data.num_workers=0",
                                               f"tasks.semseg={len(CLASSES)}", "train.batch_size=2",
                                               "train.log_every=1", "train.eval_last_epochs=0", "eval.batch_size=2",
                                               "eval.num_images=2", "train.kernels=torch", "train.max_steps=2"])
    runs.train(config, out, progress=False)
    return out


def test_files_that_are_not_checkpoints_are_refused(capsys, tmp_path, finished_run):
    foreign = tmp_path / "dict.pt"
    torch.save({"a": 1}, foreign)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    without_keys = tmp_path / "without.pt"
    atomic_save({"a": 1}, without_keys)
    for path, words in ((foreign, "is not a sca-mtl checkpoint"), (tensor, "is not a sca-mtl checkpoint"),
                        (without_keys, "is not a training checkpoint: it lacks model, config, step")):
        err = one_line_error(capsys, ["eval", "--checkpoint", str(path), "--out", str(tmp_path / "eval")])
        assert str(path) in err and words in err, err
    assert not (tmp_path / "eval").exists()


def test_a_damaged_checkpoint_is_refused_with_its_path(capsys, tmp_path, finished_run, tiny_overrides):
    data = bytearray((finished_run / "last.pt").read_bytes())
    for offset in (len(MAGIC) + 200, len(data) // 2, len(data) - 300):  # three 16-byte regions flipped
        data[offset:offset + 16] = bytes(b ^ 0xFF for b in data[offset:offset + 16])
    damaged = tmp_path / "run"
    damaged.mkdir()
    (damaged / "last.pt").write_bytes(bytes(data))
    err = one_line_error(capsys, ["eval", "--checkpoint", str(damaged / "last.pt")])
    assert f"checkpoint {damaged / 'last.pt'} is damaged" in err
    err = one_line_error(capsys, train_argv(damaged, tiny_overrides, "--resume"))
    assert "is damaged" in err and (damaged / "last.pt").read_bytes() == bytes(data)


def test_eval_with_another_task_set_names_the_checkpoints(capsys, tmp_path, finished_run):
    err = one_line_error(capsys, ["eval", "--checkpoint", str(finished_run / "last.pt"), "--out",
                                  str(tmp_path / "eval"), "tasks.semseg=13"])
    assert "holds another model (sca_mtl for tasks {'semseg': 10, 'depth': 1, 'normals': 3, 'edge': 1})" in err, err


def test_non_finite_targets_name_their_file(capsys, tmp_path, tiny_root, tiny_overrides):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    victim = sorted((data / "normals").iterdir())[0]
    normals = np.load(victim)
    normals[0, 0] = np.nan
    np.save(victim, normals)
    overrides = [o for o in tiny_overrides if not o.startswith("data.root=")] + [f"data.root={data}"]
    err = one_line_error(capsys, train_argv(tmp_path / "run", overrides))
    assert str(victim) in err and "NaN or infinite" in err, err


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_images(capsys, tmp_path, tiny_root, tiny_overrides):
    """Depths of 3e38 m are finite, but their L1 sum over a batch overflows float32: the loss is infinite at step 1."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    for path in (data / "depth").iterdir():
        np.save(path, np.full_like(np.load(path), 3e38))
    overrides = [o for o in tiny_overrides if not o.startswith("data.root=")] + [f"data.root={data}"]
    err = one_line_error(capsys, train_argv(tmp_path / "run", overrides))
    assert "non-finite at step 1 (epoch 0)" in err and "synthetic_0000" in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_log_records_are_strict_json():
    line = _json_line({"metrics": {"depth": {"rmse": float("nan")}}, "delta_m": float("inf"), "step": 3})
    assert json.loads(line) == {"metrics": {"depth": {"rmse": None}}, "delta_m": None, "step": 3}
    assert "NaN" not in line and "Infinity" not in line


KILL_DURING_SECOND_SAVE = textwrap.dedent("""
    import os, signal, sys
    from sca_mtl.engine import checkpoint
    from sca_mtl.cli import main

    saves = []
    real_write = checkpoint._atomic_write

    def write_then_die(path, write):
        if str(path).endswith("last.pt"):
            saves.append(path)
            if len(saves) == 2:  # half of the payload on disk, then SIGKILL
                def half(f):
                    f.write(b"x" * 4096)
                    f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_write(path, half)
        return real_write(path, write)

    checkpoint._atomic_write = write_then_die
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_killed_while_writing_a_checkpoint_then_resumed(tmp_path, tiny_overrides):
    """SIGKILL in the middle of the second last.pt write: the temporary file it leaves is removed on --resume, the
    metrics log holds each step once, and the resumed run ends with the parameters of a run that never stopped (the
    multi-task baseline: what is tested is the run, not the model)."""
    argv = train_argv(tmp_path / "killed", tiny_overrides, "optim.epochs=3", "model.name=mtl_baseline")
    process = subprocess.run([sys.executable, "-c", KILL_DURING_SECOND_SAVE, *argv], cwd=os.getcwd(),
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    left = list((tmp_path / "killed").glob(".last.pt.tmp-*"))
    assert len(left) == 1

    assert main([*argv, "--resume"]) == 0
    assert not list((tmp_path / "killed").glob(".*.tmp-*"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == list(range(1, 10))  # 3 epochs of 3 steps, each logged once

    assert main(train_argv(tmp_path / "straight", tiny_overrides, "optim.epochs=3", "model.name=mtl_baseline")) == 0
    killed = load_checkpoint(tmp_path / "killed" / "last.pt")["model"]
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    assert all(torch.equal(killed[name], straight[name]) for name in straight)


def test_resuming_a_finished_run_adds_no_record(tmp_path, tiny_overrides):
    argv = train_argv(tmp_path / "run", tiny_overrides, "--max-steps", "1")
    assert main(argv) == 0
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert main([*argv, "--resume"]) == 0
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == log
