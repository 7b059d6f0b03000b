"""The sca-mtl command line end to end on a tiny synthetic set, and its one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from sca_mtl import boundary
from sca_mtl.cli import main
from tests.sca_mtl.engine.test_compare import write_run


@pytest.mark.slow
def test_make_synthetic_train_eval(tmp_path, tiny_overrides, capsys):
    data = tmp_path / "data"
    assert main(["make-synthetic", "--out", str(data), "--n", "8", "--size", "48x64", "--seed", "5"]) == 0
    assert len((data / "gt_sets" / "train.txt").read_text().split()) + len(
        (data / "gt_sets" / "val.txt").read_text().split()) == 8

    run = tmp_path / "run"
    overrides = [o for o in tiny_overrides if not o.startswith("data.root=")] + ["tasks.edge=1", "loss_weights.edge=50"]
    assert main(["train", "--config", "synthetic_sca_mtl", "--out", str(run), "--data-root", str(data),
                 "--max-steps", "2", "--kernels", "torch", "--seed", "1", "--no-progress", *overrides]) == 0
    assert {p.name for p in run.iterdir()} >= {"metrics.jsonl", "last.pt", "best.pt", "training_curves.png"}

    assert main(["eval", "--checkpoint", str(run / "last.pt")]) == 0
    printed = capsys.readouterr().out
    assert "| semseg | **mIoU** |" in printed and "| edge | **odsF** |" in printed
    assert "Δm against the trivial predictor" in printed and "(edge left out: the trivial predictor scores 0" in printed
    results = json.loads((run / "eval" / "metrics.json").read_text())
    assert results["step"] == 2 and set(results["metrics"]) == {"semseg", "depth", "normals", "edge"}
    assert set(results["metrics"]["edge"]) == {"odsF", "oisF", "AP"}
    assert set(results["trivial_predictor"]) == set(results["metrics"])
    assert (run / "eval" / "predictions.png").stat().st_size > 0 and (run / "eval" / "metrics.md").exists()


def test_boundary_scores_prediction_files(tmp_path, capsys):
    """8-bit PNG predictions (as MTI-Net saves them) against NYUD_MT-style .npy boundaries: the scores of the
    benchmark on the same maps; a missing ground truth is a one-line error naming the id."""
    rng = np.random.default_rng(0)
    predictions, truths = tmp_path / "pred", tmp_path / "gt"
    predictions.mkdir()
    truths.mkdir()
    maps, targets = [], []
    for i in range(3):
        truth = np.zeros((40, 48), np.float32)
        truth[rng.integers(5, 35), 4:44] = 1
        png = np.clip(ndimage.gaussian_filter(truth, 1.5) * 600 + rng.integers(0, 60, truth.shape), 0, 255)
        Image.fromarray(png.astype(np.uint8)).save(predictions / f"img{i}.png")
        np.save(truths / f"img{i}.npy", truth)
        maps.append(png.astype(np.uint8).astype(np.float32) / 255)
        targets.append(truth)
    out = tmp_path / "scores.json"
    assert main(["boundary", "--predictions", str(predictions), "--ground-truth", str(truths), "--dataset", "nyud",
                 "--workers", "1", "--out", str(out)]) == 0
    expected = boundary.evaluate(maps, targets, max_dist=0.011, workers=1)
    written = json.loads(out.read_text())
    assert written == {"images": 3, "max_dist": 0.011, **expected}
    assert f"odsF: {expected['odsF']:.4f}" in capsys.readouterr().out
    (truths / "img2.npy").unlink()
    err = _one_line_error(capsys, ["boundary", "--predictions", str(predictions), "--ground-truth", str(truths),
                                   "--max-dist", "0.01"])
    assert "1 ids have no file in" in err and "img2" in err


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_unknown_config_key(capsys):
    err = _one_line_error(capsys, ["train", "--config", "synthetic_sca_mtl", "train.batchsize=2"])
    assert "train.batchsize" in err


def test_unknown_task(capsys, tiny_root):
    err = _one_line_error(capsys, ["train", "--config", "synthetic_sca_mtl", "--data-root", str(tiny_root),
                                   "tasks.albedo=3"])
    assert "albedo" in err


def test_missing_data_root(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    err = _one_line_error(capsys, ["train", "--config", "synthetic_sca_mtl", "--data-root", str(missing)])
    assert str(missing) in err


def test_missing_checkpoint(capsys, tmp_path):
    err = _one_line_error(capsys, ["eval", "--checkpoint", str(tmp_path / "last.pt")])
    assert "last.pt" in err


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_names_the_file(capsys, tmp_path, tiny_root, tiny_overrides, workers):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    victims = sorted((data / "images").iterdir())
    for victim in victims:
        victim.write_bytes(b"not a jpeg")
    overrides = [o for o in tiny_overrides if not o.startswith(("data.root=", "data.num_workers="))]
    err = _one_line_error(capsys, ["train", "--config", "synthetic_sca_mtl", "--data-root", str(data), "--out",
                                   str(tmp_path / "run"), "--no-progress", f"data.num_workers={workers}", *overrides])
    assert str(data / "images") in err


def test_train_refuses_to_overwrite_a_run(capsys, tmp_path, tiny_root):
    (tmp_path / "last.pt").write_bytes(b"a previous run")
    err = _one_line_error(capsys, ["train", "--config", "synthetic_sca_mtl", "--data-root", str(tiny_root), "--out",
                                   str(tmp_path)])
    assert "--resume" in err and (tmp_path / "last.pt").read_bytes() == b"a previous run"


@pytest.mark.parametrize(
    "overrides, words",
    [(["model.name=resnet"], ["unknown model 'resnet'", "mti_net"]),
     (["model.name=single_task"], ["'single_task' serves exactly 1 task, got 4", "sca-mtl single-task"])],
    ids=["unknown-model", "task-count"],
)
def test_train_refuses_a_model_before_writing(capsys, tmp_path, tiny_root, overrides, words):
    out = tmp_path / "run"
    err = _one_line_error(capsys, ["train", "--config", "synthetic_sca_mtl", "--data-root", str(tiny_root),
                                   "--out", str(out), "tasks.semseg=10", *overrides])
    assert all(word in err for word in words), err
    assert not out.exists()


def test_single_task_refuses_a_missing_data_folder_before_training(capsys, tmp_path):
    out = tmp_path / "single"
    err = _one_line_error(capsys, ["single-task", "--config", "synthetic_sca_mtl", "--data-root",
                                   str(tmp_path / "nowhere"), "--out", str(out)])
    assert "nowhere" in err and not out.exists()


def test_compare_errors_write_nothing(capsys, tmp_path):
    run = write_run(tmp_path / "run", metrics={"semseg": {"mIoU": 1.0}, "depth": {"rmse": 1.0}})
    other = write_run(tmp_path / "other", metrics={"semseg": {"mIoU": 1.0}, "depth": {"rmse": 1.0}},
                      dataset="pascal_context")
    out = tmp_path / "compare"
    for argv, words in (([str(run), str(other)], "different dataset"),
                        ([str(tmp_path / "nowhere")], "run folder not found"),
                        ([str(run), "--single-task", str(tmp_path / "none.json")], "none.json does not exist"),
                        ([str(run), "--paper", "table3"], "paper row")):
        err = _one_line_error(capsys, ["compare", *argv, "--out", str(out)])
        assert words in err, err
    assert not out.exists()
