"""Metrics against hand-computed cases and MTI-Net's evaluation code (transcribed here in numpy as independent
references), batch-splitting and rank-splitting invariance, the no-host-sync rule, and Δm against the paper's tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from sca_mtl import boundary
from sca_mtl.metrics import (
    BoundaryMeter,
    DepthMeter,
    MultiTaskMeter,
    NormalsMeter,
    SaliencyMeter,
    SegmentationMeter,
    delta_m,
    delta_m_over_trivial,
    headline_metrics,
    load_single_task_results,
)

IGNORE = 255
MEDIAN_TOLERANCE = 0.005  # half a 0.01° histogram bin


# ---- MTI-Net's evaluation, transcribed (evaluation/eval_*.py, jaccard.py), as independent references ----

def mti_semseg(preds, gts, n_classes):
    tp, fp, fn = [0] * n_classes, [0] * n_classes, [0] * n_classes
    for pred, gt in zip(preds, gts):
        valid = gt != IGNORE
        for c in range(n_classes):
            tp[c] += np.sum((gt == c) & (pred == c) & valid)
            fp[c] += np.sum((gt != c) & (pred == c) & valid)
            fn[c] += np.sum((gt == c) & (pred != c) & valid)
    jac = [tp[c] / max(tp[c] + fp[c] + fn[c], 1e-8) for c in range(n_classes)]
    return 100 * np.mean(jac)


def mti_normals(preds, gts):
    """eval_normals on (H, W, 3) arrays, with 255 = invalid mapped to zero first (AddIgnoreRegions undone)."""
    def normal_ize(arr):
        return arr / (np.linalg.norm(arr, ord=2, axis=2)[..., np.newaxis] + 1e-12)

    deg = []
    for pred, gt in zip(preds, gts):
        gt = np.where(gt == IGNORE, 0.0, gt)
        valid = np.linalg.norm(gt, ord=2, axis=2) != 0
        pred, gt = normal_ize(pred), normal_ize(gt)
        deg.extend(np.rad2deg(np.arccos(np.clip(np.sum(pred * gt, axis=2), -1, 1)))[valid])
    deg = np.array(deg)
    return {
        "mean": np.mean(deg), "median": np.median(deg), "rmse": np.mean(deg**2) ** 0.5,
        "11.25": np.mean(deg < 11.25) * 100, "22.5": np.mean(deg < 22.5) * 100, "30": np.mean(deg < 30) * 100,
    }


def mti_saliency(probs, gts):
    thresholds = np.linspace(0.2, 0.9, 15)
    jac, prec, rec = (np.zeros((len(probs), len(thresholds))) for _ in range(3))
    for i, (prob, gt) in enumerate(zip(probs, gts)):
        gt = gt.astype(bool)
        for j, t in enumerate(thresholds):
            mask = prob > t
            if not gt.any() and not mask.any():
                jac[i, j] = 1
            else:
                jac[i, j] = np.sum(gt & mask) / np.sum(gt | mask)
            tp, fn, fp = (mask & gt).sum(), (~mask & gt).sum(), (mask & ~gt).sum()
            prec[i, j], rec[i, j] = tp / (tp + fp + 1e-12), tp / (tp + fn + 1e-12)
    m_prec, m_rec = prec.mean(0), rec.mean(0)
    f = 2 * m_prec * m_rec / (m_prec + m_rec + 1e-12)
    return {"maxF": 100 * f.max(), "mIoU": 100 * jac.mean(0).max()}


# ---- segmentation ----

def test_segmentation_hand_computed():
    target = torch.tensor([[[0, 0, 1], [1, 2, IGNORE]]])
    pred = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    meter = SegmentationMeter(3)
    meter.update(pred, target)
    # confusion[gt][pred]: (0,0) (0,1) (1,1) (1,2) (2,2); IoU = 1/2, 1/3, 1/2; 3 of 5 pixels right
    result = meter.compute()
    assert result["mIoU"] == pytest.approx(100 * (1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert result["pixel_acc"] == pytest.approx(60.0)


def test_segmentation_absent_class_counts_as_zero_iou():
    target = torch.tensor([[[0, 1, 1, 2]]])
    meter = SegmentationMeter(4)  # class 3: never in the ground truth, never predicted
    meter.update(target.clone(), target)
    assert meter.compute()["mIoU"] == pytest.approx(75.0)  # [M]: (1 + 1 + 1 + 0) / 4


def test_segmentation_matches_mti_net_and_takes_logits():
    logits = torch.randn(3, 6, 9, 11)
    target = torch.randint(0, 6, (3, 9, 11))
    target[0, :4] = IGNORE
    meter = SegmentationMeter(6)
    meter.update(logits, target)
    expected = mti_semseg(logits.argmax(1).numpy(), target.numpy(), 6)
    assert meter.compute()["mIoU"] == pytest.approx(expected, rel=1e-12)


def test_segmentation_skips_all_ignored_images():
    target = torch.randint(0, 7, (2, 5, 5))
    target[1] = IGNORE  # human_parts: an image without a person
    pred = torch.randint(0, 7, (2, 5, 5))
    both, first = SegmentationMeter(7), SegmentationMeter(7)
    both.update(pred, target)
    first.update(pred[:1], target[:1])
    assert both.compute() == first.compute()


def test_segmentation_label_out_of_range_is_reported_at_compute():
    meter = SegmentationMeter(3)
    meter.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 1], [2, 7]]]))
    with pytest.raises(ValueError, match="1 pixels had a label outside \\[0, 3\\)"):
        meter.compute()


def test_segmentation_bad_shapes():
    with pytest.raises(ValueError, match="logits or"):
        SegmentationMeter(3).update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


# ---- depth ----

def test_depth_rmse_is_pooled_over_pixels_not_averaged_over_images():
    target = torch.full((2, 1, 2, 2), float(IGNORE))
    pred = torch.zeros(2, 1, 2, 2)
    target[0, 0, 0, 0], pred[0, 0, 0, 0] = 1.0, 3.0  # image 0: one pixel, error 2
    target[1, 0] = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # image 1: three valid pixels (0 = invalid) ...
    pred[1, 0] = torch.tensor([[2.0, 2.0], [2.0, 5.0]])  # ... error 1 each
    meter = DepthMeter()
    meter.update(pred, target)
    assert meter.compute()["rmse"] == pytest.approx(math.sqrt((4 + 3) / 4))  # not (2 + 1) / 2


def test_depth_log_rmse_and_clamping():
    target = torch.tensor([[[[1.0, 2.0, 4.0]]]])
    pred = target * math.e
    meter = DepthMeter()
    meter.update(pred, target)
    assert meter.compute()["log_rmse"] == pytest.approx(1.0, rel=1e-6)
    meter.reset()
    meter.update(torch.tensor([[[[-1.0]]]]), torch.tensor([[[[1.0]]]]))  # pred <= 0 becomes 1e-9
    result = meter.compute()
    assert result["rmse"] == pytest.approx(1.0)
    assert result["log_rmse"] == pytest.approx(-math.log(1e-9), rel=1e-6)


def test_nothing_valid_gives_nan():
    meter = DepthMeter()
    meter.update(torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), float(IGNORE)))
    assert all(math.isnan(v) for v in meter.compute().values())


# ---- normals ----

def _at_angles(degrees):
    """(1, 3, 1, n) predictions at the given angles from the ground truth (0, 0, 1), with varied norms."""
    radians = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    pred = torch.stack([radians.sin(), torch.zeros_like(radians), radians.cos()]) * 3.0
    target = torch.zeros_like(pred)
    target[2] = 1.0
    return pred.float().reshape(1, 3, 1, -1), target.float().reshape(1, 3, 1, -1)


def test_normals_known_angles():
    angles = [0.0, 10.0, 20.0, 25.0, 45.0, 90.0, 180.0]
    pred, target = _at_angles(angles)
    # plus an invalid (255) pixel and a zero ground-truth pixel, both skipped
    pred = torch.cat([pred, torch.ones(1, 3, 1, 2)], dim=3)
    target = torch.cat([target, torch.tensor([IGNORE, 0.0]).expand(1, 3, 1, 2)], dim=3)
    meter = NormalsMeter()
    meter.update(pred, target)
    result = meter.compute()
    assert result["mean"] == pytest.approx(sum(angles) / 7, abs=1e-4)
    assert result["rmse"] == pytest.approx(math.sqrt(sum(a * a for a in angles) / 7), abs=1e-4)
    assert result["median"] == pytest.approx(25.0, abs=MEDIAN_TOLERANCE)
    assert result["11.25"] == pytest.approx(100 * 2 / 7)
    assert result["22.5"] == pytest.approx(100 * 3 / 7)
    assert result["30"] == pytest.approx(100 * 4 / 7)


def test_normals_extreme_angles_are_exact():
    pred, target = _at_angles([0.0, 180.0])
    meter = NormalsMeter()
    meter.update(pred, target)
    result = meter.compute()
    assert result["mean"] == 90.0  # 0° and 180° exactly
    assert result["median"] == pytest.approx(90.0, abs=MEDIAN_TOLERANCE)  # even count: mean of the middle two


def test_normals_match_mti_net():
    pred = torch.randn(2, 3, 12, 13)
    target = F.normalize(torch.randn(2, 3, 12, 13), dim=1)
    target[0, :, :5] = IGNORE
    meter = NormalsMeter()
    meter.update(pred, target)
    result = meter.compute()
    expected = mti_normals(pred.permute(0, 2, 3, 1).double().numpy(), target.permute(0, 2, 3, 1).double().numpy())
    for key, value in expected.items():
        tolerance = MEDIAN_TOLERANCE + 1e-9 if key == "median" else 1e-6
        assert result[key] == pytest.approx(value, abs=tolerance), key


# ---- saliency ----

def test_saliency_matches_mti_net():
    logits = torch.randn(4, 1, 9, 10) * 2
    target = (torch.rand(4, 1, 9, 10) > 0.6).float()
    target[2] = 0.0  # no salient object and nothing predicted at any threshold: Jaccard 1 ([M])
    logits[2] = -10.0
    target[3] = 0.0  # no salient object but some false positives: Jaccard 0
    meter = SaliencyMeter()
    meter.update(logits, target)
    expected = mti_saliency(torch.sigmoid(logits)[:, 0].double().numpy(), target[:, 0].numpy())
    result = meter.compute()
    assert result == pytest.approx(expected, rel=1e-9)


def test_saliency_ignores_pixels_and_skips_fully_ignored_images():
    logits = torch.randn(2, 1, 6, 6)
    target = (torch.rand(2, 1, 6, 6) > 0.5).float()
    masked = target.clone()
    masked[1] = IGNORE
    masked[0, 0, 0] = IGNORE
    meter = SaliencyMeter()
    meter.update(logits, masked)
    # the reference sees image 0 without its first row, and no image 1
    expected = mti_saliency(torch.sigmoid(logits)[:1, 0, 1:].double().numpy(), target[:1, 0, 1:].numpy())
    assert meter.compute() == pytest.approx(expected, rel=1e-9)


# ---- accumulation, reset, host syncs ----

TASKS4 = {"semseg": 5, "depth": 1, "normals": 3, "sal": 1}


def _batch(batch: int = 4, size=(8, 10)):
    h, w = size
    outputs = {
        "semseg": torch.randn(batch, 5, h, w), "depth": torch.rand(batch, 1, h, w) * 4,
        "normals": torch.randn(batch, 3, h, w), "sal": torch.randn(batch, 1, h, w),
        "deep_supervision": {},  # ignored by the meter
    }
    targets = {
        "semseg": torch.randint(0, 5, (batch, h, w)), "depth": torch.rand(batch, 1, h, w) * 4,
        "normals": F.normalize(torch.randn(batch, 3, h, w), dim=1), "sal": (torch.rand(batch, 1, h, w) > 0.5).float(),
    }
    targets["semseg"][0, :2] = IGNORE
    targets["depth"][1, :, :3] = IGNORE
    targets["normals"][2, :, 4:] = IGNORE
    return outputs, targets


def _split(tree, parts):
    """Split every tensor of a (nested) batch dict into `parts` chunks along the batch."""
    if isinstance(tree, dict):
        chunks = [dict() for _ in range(parts)]
        for key, value in tree.items():
            for chunk, piece in zip(chunks, _split(value, parts)):
                chunk[key] = piece
        return chunks
    return list(tree.tensor_split(parts))


def _assert_results_close(a, b):
    assert a.keys() == b.keys()
    for task in a:
        assert a[task] == pytest.approx(b[task], rel=1e-9, abs=1e-9), task


def test_several_batches_equal_one_big_batch():
    outputs, targets = _batch()
    whole, parts = MultiTaskMeter(TASKS4), MultiTaskMeter(TASKS4)
    whole.update(outputs, targets)
    for out, tgt in zip(_split(outputs, 3), _split(targets, 3)):
        parts.update(out, tgt)
    _assert_results_close(whole.compute(), parts.compute())
    parts.reset()
    parts.update(outputs, targets)
    _assert_results_close(whole.compute(), parts.compute())


def test_update_makes_no_host_sync(monkeypatch):
    """CPU proxy of the rule (the GPU test below checks the real thing): update() never reads a value back."""
    meter = MultiTaskMeter(TASKS4)
    outputs, targets = _batch()

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync in update()")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for name in ("bincount", "masked_select", "nonzero", "unique"):
        monkeypatch.setattr(torch, name, forbidden)
    original_getitem = torch.Tensor.__getitem__

    def getitem(self, index):
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            forbidden()
        return original_getitem(self, index)

    monkeypatch.setattr(torch.Tensor, "__getitem__", getitem)
    meter.update(outputs, targets)
    monkeypatch.undo()
    assert set(meter.compute()) == set(TASKS4)


@pytest.mark.gpu
def test_update_makes_no_host_sync_on_cuda():
    meter = MultiTaskMeter(TASKS4, device="cuda")
    outputs, targets = _batch()
    outputs = {k: v.cuda() for k, v in outputs.items() if k in TASKS4}
    targets = {k: v.cuda() for k, v in targets.items()}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        meter.update(outputs, targets)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    cpu = MultiTaskMeter(TASKS4)
    cpu.update({k: v.cpu() for k, v in outputs.items()}, {k: v.cpu() for k, v in targets.items()})
    _assert_results_close(meter.compute(), cpu.compute())


def _ddp_worker(rank: int, world_size: int, init_file: str, result_file: str) -> None:
    # A forked child must not enter the parent's OpenMP pool: libgomp is not fork-safe, and MKL's threaded log()
    # hung here when the parent's pool had started (as DataLoader workers do, run single-threaded).
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)  # every rank draws the same data and keeps its own share
    outputs, targets = _batch(batch=6)
    meter = MultiTaskMeter(TASKS4)
    meter.update(_split(outputs, world_size)[rank], _split(targets, world_size)[rank])
    meter.all_reduce()
    if rank == 0:
        with open(result_file, "w") as f:
            json.dump(meter.compute(), f)
    dist.destroy_process_group()


def test_all_reduce_makes_distributed_evaluation_exact(tmp_path):
    result_file = tmp_path / "result.json"
    # fork: the workers inherit the imported modules (spawn re-imports torch, seconds per process)
    args = (2, str(tmp_path / "init"), str(result_file))
    mp.start_processes(_ddp_worker, args=args, nprocs=2, join=True, start_method="fork")
    torch.manual_seed(0)
    meter = MultiTaskMeter(TASKS4)
    meter.update(*_batch(batch=6))
    _assert_results_close(json.loads(result_file.read_text()), meter.compute())


def test_all_reduce_without_a_process_group_is_a_no_op():
    meter = MultiTaskMeter(TASKS4)
    meter.update(*_batch())
    before = meter.compute()
    meter.all_reduce()
    assert meter.compute() == before


def test_multi_task_meter_errors():
    with pytest.raises(ValueError, match="boundary scores take their matching tolerance from the dataset"):
        MultiTaskMeter({"semseg": 21, "edge": 1})
    with pytest.raises(ValueError, match="depends on the dataset"):
        MultiTaskMeter(["semseg", "depth"])
    assert set(MultiTaskMeter(["human_parts", "normals"]).meters) == {"human_parts", "normals"}
    with pytest.raises(ValueError, match="must both hold 'depth'"):
        MultiTaskMeter(["depth"]).update({}, {})


def test_headline_metrics_picks_the_table_metric():
    results = {"semseg": {"mIoU": 40.5, "pixel_acc": 70.0}, "depth": {"rmse": 0.584, "log_rmse": 0.2}, "normals": 20.59}
    assert headline_metrics(results) == {"semseg": 40.5, "depth": 0.584, "normals": 20.59}
    with pytest.raises(ValueError, match="headline metric 'rmse'"):
        headline_metrics({"depth": {"log_rmse": 0.2}})


# ---- Δm against MODEL_SPEC.md 7.3 (recomputed from the printed metrics) ----

TABLE1_SINGLE = {"depth": 0.644, "semseg": 35.04}
TABLE2_SINGLE = {"depth": 0.625, "semseg": 37.99, "normals": 20.87}
TABLE3_SINGLE = {"normals": 14.87, "semseg": 57.33}
TABLE4_SINGLE = {"normals": 14.87, "semseg": 57.33, "human_parts": 60.08}
TABLE5_BASELINE = {"depth": 0.611, "semseg": 37.21}  # the ablation's baseline is MTI-Net


@pytest.mark.parametrize(
    "model, baseline, expected",
    [
        ({"depth": 0.604, "semseg": 41.33}, TABLE1_SINGLE, 12.08),  # Table 1, Ours "Teacher"
        ({"depth": 0.597, "semseg": 40.21}, TABLE1_SINGLE, 11.03),  # Table 1, Ours "Student"
        ({"depth": 0.674, "semseg": 35.03}, TABLE1_SINGLE, -2.34),  # Table 1, MTL baseline (paper: -2.46)
        ({"depth": 0.611, "semseg": 37.21}, TABLE1_SINGLE, 5.66),  # Table 1, MTI-Net
        ({"depth": 0.584, "semseg": 40.50, "normals": 20.59}, TABLE2_SINGLE, 4.84),  # Table 2, Ours
        ({"depth": 0.646, "semseg": 35.55, "normals": 21.99}, TABLE2_SINGLE, -5.05),  # Table 2, MTL baseline
        ({"depth": 0.609, "semseg": 37.50, "normals": 20.50}, TABLE2_SINGLE, 1.01),  # Table 2, ATRC
        ({"normals": 13.89, "semseg": 60.09}, TABLE3_SINGLE, 5.70),  # Table 3, Ours
        ({"normals": 14.77, "semseg": 54.18}, TABLE3_SINGLE, -2.41),  # Table 3, PAD-Net
        ({"normals": 14.71, "semseg": 59.10, "human_parts": 62.47}, TABLE4_SINGLE, 2.71),  # Table 4, Ours
        ({"normals": 15.04, "semseg": 55.77, "human_parts": 59.81}, TABLE4_SINGLE, -1.44),  # Table 4, PAD-Net
        ({"depth": 0.604, "semseg": 41.33}, TABLE5_BASELINE, 6.11),  # Table 5, full model vs MTI-Net
    ],
)
def test_delta_m_reproduces_the_paper_tables(model, baseline, expected):
    assert round(delta_m(model, baseline), 2) == pytest.approx(expected, abs=1e-9)


def test_delta_m_signs_and_nested_input():
    assert delta_m({"depth": 0.5}, {"depth": 1.0}) == pytest.approx(50.0)  # lower RMSE is better
    assert delta_m({"sal": 60.0}, {"sal": 50.0}) == pytest.approx(20.0)  # higher mIoU is better
    assert delta_m({"normals": 22.0}, {"normals": 20.0}) == pytest.approx(-10.0)
    nested = {"semseg": {"mIoU": 41.33, "pixel_acc": 1.0}, "depth": {"rmse": 0.604, "log_rmse": 0.2}}
    assert delta_m(nested, TABLE1_SINGLE) == pytest.approx(delta_m({"semseg": 41.33, "depth": 0.604}, TABLE1_SINGLE))


def test_delta_m_errors():
    with pytest.raises(ValueError, match="only in model \\['normals'\\]"):
        delta_m({"semseg": 1.0, "normals": 20.0}, {"semseg": 1.0})
    with pytest.raises(ValueError, match="baseline of 'depth' is 0"):
        delta_m({"depth": 0.5}, {"depth": 0.0})
    with pytest.raises(ValueError, match="non-finite"):
        delta_m({"depth": math.nan}, {"depth": 0.5})
    with pytest.raises(ValueError, match="unknown task"):
        delta_m({"height": 1.0}, {"height": 2.0})



def test_delta_m_over_trivial_leaves_out_zero_baselines():
    assert delta_m_over_trivial({"depth": 0.5, "edge": 40.0}, {"depth": 1.0, "edge": 0.0}) == (pytest.approx(50.0),
                                                                                               ["edge"])
    assert delta_m_over_trivial({"depth": 0.5}, {"depth": 1.0}) == (pytest.approx(50.0), [])
    value, left_out = delta_m_over_trivial({"edge": 40.0}, {"edge": 0.0})
    assert math.isnan(value) and left_out == ["edge"]


# ---- single-task results files ----

def test_load_single_task_results(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"semseg": 35.04, "depth": 0.644}))
    assert load_single_task_results(flat) == {"semseg": 35.04, "depth": 0.644}
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({
        "semseg": {"mIoU": 35.04, "jaccards_all_categs": [0.1, 0.2]}, "depth": {"rmse": 0.644, "log_rmse": 0.2},
        "multi_task_performance": 0.0,
    }))
    assert load_single_task_results(str(nested)) == {"semseg": 35.04, "depth": 0.644}


def test_load_single_task_results_errors(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_single_task_results(missing)
    cases = {
        "broken.json": ("{not json", "not readable JSON"),
        "list.json": ("[1, 2]", "must hold a JSON object"),
        "none.json": ('{"foo": 1}', "names no known task"),
        "nometric.json": ('{"depth": {"log_rmse": 0.2}}', "headline metric 'rmse'"),
        "string.json": ('{"depth": "0.6"}', "must be a number"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            load_single_task_results(path)
        assert name in str(info.value)


def _edge_batch(batch: int = 6, size: tuple[int, int] = (24, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a blurred, noisy copy of random boundary maps, and those maps."""
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(batch, 1, *size, generator=generator) < 0.05).float()
    blurred = F.avg_pool2d(target, 3, stride=1, padding=1)
    logits = 8 * blurred - 2 + torch.randn(target.shape, generator=generator)
    return logits, target


@pytest.mark.parametrize("workers", [1, 2])
def test_boundary_meter_equals_the_benchmark_over_batches(workers):
    logits, target = _edge_batch()
    meter = BoundaryMeter.for_task(1, dataset="pascal_context", workers=workers)
    for out, tgt in zip(logits.split(4), target.split(4)):
        meter.update(out, tgt)
    expected = boundary.evaluate(list(torch.sigmoid(logits)[:, 0].numpy()), list(target[:, 0].numpy()),
                                 max_dist=boundary.MAX_DIST["pascal_context"], workers=1)
    result = meter.compute()
    assert result == {"odsF": 100 * expected["odsF"], "oisF": 100 * expected["oisF"], "AP": 100 * expected["AP"]}
    assert 0 < result["odsF"] < 100
    meter.reset()
    assert math.isnan(meter.compute()["odsF"])


def test_boundary_meter_state_sums_over_ranks():
    """What all_reduce does across two ranks, done by hand: the state of each half, summed, scores the whole."""
    logits, target = _edge_batch()
    whole, halves = BoundaryMeter(0.01, workers=1), [BoundaryMeter(0.01, workers=1) for _ in range(2)]
    whole.update(logits, target)
    for meter, out, tgt in zip(halves, logits.split(3), target.split(3)):
        meter.update(out, tgt)
        meter.all_reduce()  # collects the counts; no process group, so no reduction
    for name in ("totals", "best", "images"):
        halves[0]._state[name] += halves[1]._state[name]
    assert halves[0].compute() == whole.compute()


def test_boundary_meter_names_the_bad_image():
    logits, target = _edge_batch(batch=3)
    target[2, 0, 0, 0] = IGNORE
    meter = BoundaryMeter(0.01, workers=1)
    with pytest.raises(ValueError, match=r"edge: evaluated image 2: the ground truth must be binary .*\[255"):
        meter.update(logits, target)
