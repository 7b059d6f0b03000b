"""Per-task losses against hand-computed values and MTI-Net's own formulations (written out here independently),
and the deep-supervision scheme's terms and total."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sca_mtl.losses import (
    LOSSES,
    MultiTaskLoss,
    balanced_bce_loss,
    cross_entropy_loss,
    l1_loss,
    loss_terms,
    normals_l1_loss,
)
from sca_mtl.tasks import TASKS

IGNORE = 255


# ---- MTI-Net's formulations, transcribed (losses/loss_functions.py), as independent references ----

def mti_balanced_bce(output, label, pos_weight=None, void_pixels=None):
    """MTI-Net BalancedCrossEntropyLoss(size_average=True), its sign trick and void branch included."""
    labels = torch.ge(label, 0.5).float()
    if pos_weight is None:
        num_labels_pos = torch.sum(labels)
        num_labels_neg = torch.sum(1.0 - labels)
        num_total = num_labels_pos + num_labels_neg
        w = num_labels_neg / num_total
    else:
        w = pos_weight
    output_gt_zero = torch.ge(output, 0).float()
    loss_val = torch.mul(output, (labels - output_gt_zero)) - torch.log(
        1 + torch.exp(output - 2 * torch.mul(output, output_gt_zero))
    )
    loss_pos_pix = -torch.mul(labels, loss_val)
    loss_neg_pix = -torch.mul(1.0 - labels, loss_val)
    if void_pixels is not None:
        w_void = torch.le(void_pixels, 0.5).float()
        loss_pos_pix = torch.mul(w_void, loss_pos_pix)
        loss_neg_pix = torch.mul(w_void, loss_neg_pix)
        if pos_weight is None:
            num_total = num_total - torch.ge(void_pixels, 0.5).float().sum()
            w = num_labels_neg / num_total
    final_loss = w * torch.sum(loss_pos_pix) + (1 - w) * torch.sum(loss_neg_pix)
    return final_loss / label.numel()


def mti_normals_loss(out, label):
    """MTI-Net NormalsLoss(normalize=True, size_average=True, norm=1)."""
    mask = label != IGNORE
    n_valid = torch.sum(mask).item()
    out_norm = out / (torch.norm(out, p=2, dim=1).unsqueeze(dim=1) + 1e-12)
    loss = F.l1_loss(torch.masked_select(out_norm, mask), torch.masked_select(label, mask), reduction="sum")
    return loss / max(n_valid, 1e-6)


# ---- per-task losses ----

def test_cross_entropy_hand_computed_with_ignore():
    # rows: classes 0 and 1; columns: three pixels of one image row
    pred = torch.tensor([[0.0, math.log(3.0), 5.0], [0.0, 0.0, -5.0]]).reshape(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, IGNORE]]])
    # pixel 0: softmax (1/2, 1/2) -> log 2; pixel 1: softmax (3/4, 1/4), class 1 -> log 4; pixel 2 ignored
    assert torch.allclose(cross_entropy_loss(pred, target), torch.tensor((math.log(2.0) + math.log(4.0)) / 2))


def test_cross_entropy_matches_torch_mean_over_valid_pixels():
    pred = torch.randn(2, 5, 6, 7)
    target = torch.randint(0, 5, (2, 6, 7))
    target[0, :3] = IGNORE
    expected = F.cross_entropy(pred, target, ignore_index=IGNORE)  # reduction="mean" = mean over valid pixels
    assert torch.allclose(cross_entropy_loss(pred, target), expected, atol=1e-6)


def test_depth_l1_hand_computed():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[1.5, IGNORE], [2.0, IGNORE]]]])
    assert torch.allclose(l1_loss(pred, target), torch.tensor((0.5 + 1.0) / 2))


def test_normals_loss_normalises_the_prediction_and_masks_per_element():
    pred = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 4.0], [1.0, 1.0, 1.0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [IGNORE] * 3]).T.reshape(1, 3, 1, 3)
    # pixel 0: (1, 0, 0) vs (1, 0, 0) -> 0; pixel 1: (0, .6, .8) vs (0, 1, 0) -> 1.2; pixel 2 ignored; 6 elements
    assert torch.allclose(normals_l1_loss(pred, target), torch.tensor(1.2 / 6))


def test_normals_loss_matches_mti_net():
    pred = torch.randn(2, 3, 5, 6) * 3
    target = F.normalize(torch.randn(2, 3, 5, 6), dim=1)
    target[:, :, :2] = IGNORE
    target[1, 0, 4, 4] = IGNORE  # a partly-ignored pixel: masked per element
    assert torch.allclose(normals_l1_loss(pred, target), mti_normals_loss(pred, target), atol=1e-6)


def test_balanced_bce_hand_computed():
    pred = torch.zeros(1, 1, 1, 4)
    target = torch.tensor([[[[1.0, 0.0, 0.0, IGNORE]]]])
    # every BCE term is log 2; w = 2 negatives / 3 valid; (w·log2 + (1-w)·2log2) / 4 pixels
    w = 2 / 3
    assert torch.allclose(balanced_bce_loss(pred, target), torch.tensor((w + (1 - w) * 2) * math.log(2.0) / 4))
    assert torch.allclose(
        balanced_bce_loss(pred, target, pos_weight=0.95), torch.tensor((0.95 + 0.05 * 2) * math.log(2.0) / 4)
    )


@pytest.mark.parametrize("pos_weight", [None, 0.95], ids=["sal_hed", "edge_0.95"])
def test_balanced_bce_matches_mti_net(pos_weight):
    pred = torch.randn(2, 1, 8, 9) * 10  # large logits exercise the stable form
    target = (torch.rand(2, 1, 8, 9) > 0.7).float()
    expected = mti_balanced_bce(pred, target, pos_weight)
    assert torch.allclose(balanced_bce_loss(pred, target, pos_weight=pos_weight), expected, rtol=1e-5)


def test_balanced_bce_ignore_matches_mti_net_void_pixels():
    pred = torch.randn(2, 1, 8, 9)
    target = (torch.rand(2, 1, 8, 9) > 0.7).float()
    target[0, 0, :3] = IGNORE
    void = (target == IGNORE).float()
    expected = mti_balanced_bce(pred, target, None, void_pixels=void)
    assert torch.allclose(balanced_bce_loss(pred, target), expected, rtol=1e-5)


def test_balanced_bce_is_finite_for_huge_logits():
    pred = torch.tensor([[[[1e4, -1e4, 1e4, -1e4]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])
    loss = balanced_bce_loss(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert torch.allclose(loss, torch.tensor((0.5 * 1e4 + 0.5 * 1e4) / 4))


def _all_ignored(loss_name: str):
    cases = {
        "cross_entropy": (torch.randn(2, 4, 3, 3), torch.full((2, 3, 3), IGNORE)),
        "l1": (torch.randn(2, 1, 3, 3), torch.full((2, 1, 3, 3), float(IGNORE))),
        "normals_l1": (torch.randn(2, 3, 3, 3), torch.full((2, 3, 3, 3), float(IGNORE))),
        "balanced_bce": (torch.randn(2, 1, 3, 3), torch.full((2, 1, 3, 3), float(IGNORE))),
    }
    return cases[loss_name]


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_all_ignored_batch_gives_zero_and_a_finite_gradient(loss_name):
    pred, target = _all_ignored(loss_name)
    pred.requires_grad_(True)
    loss = LOSSES[loss_name](pred, target)
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad is not None and torch.equal(pred.grad, torch.zeros_like(pred))


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_losses_compute_in_float32_under_autocast(loss_name):
    pred, target = _example(loss_name)
    pred_bf16 = pred.bfloat16()
    expected = LOSSES[loss_name](pred_bf16.float(), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = LOSSES[loss_name](pred_bf16, target)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, expected, rtol=1e-6)


def _example(loss_name: str):
    cases = {
        "cross_entropy": (torch.randn(2, 4, 5, 5), torch.randint(0, 4, (2, 5, 5))),
        "l1": (torch.rand(2, 1, 5, 5) * 5, torch.rand(2, 1, 5, 5) * 5),
        "normals_l1": (torch.randn(2, 3, 5, 5), F.normalize(torch.randn(2, 3, 5, 5), dim=1)),
        "balanced_bce": (torch.randn(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.5).float()),
    }
    return cases[loss_name]


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_shape_mismatch_is_an_error(loss_name):
    pred, target = _example(loss_name)
    with pytest.raises(ValueError, match="target of shape"):
        LOSSES[loss_name](pred, target[..., :-1])


# ---- the MTI-Net / SCA-MTL deep-supervision scheme ----

CHANNELS = {"semseg": 4, "depth": 1, "normals": 3, "human_parts": 7, "sal": 1, "edge": 1}
SIZE = (32, 64)
SCALES = {f"scale_{k}": (SIZE[0] // 2 ** (k + 2), SIZE[1] // 2 ** (k + 2)) for k in range(4)}  # strides 4..32


def _target(task: str, batch: int = 2):
    h, w = SIZE
    example = {
        "semseg": lambda: torch.randint(0, CHANNELS["semseg"], (batch, h, w)),
        "human_parts": lambda: torch.randint(0, 7, (batch, h, w)),
        "depth": lambda: torch.rand(batch, 1, h, w) * 5 + 0.5,
        "normals": lambda: F.normalize(torch.randn(batch, 3, h, w), dim=1),
        "sal": lambda: (torch.rand(batch, 1, h, w) > 0.5).float(),
        "edge": lambda: (torch.rand(batch, 1, h, w) > 0.9).float(),
    }
    return example[task]()


def _outputs(tasks, batch: int = 2, deep_supervision: bool = True):
    outputs = {t: torch.randn(batch, CHANNELS[t], *SIZE, requires_grad=True) for t in tasks}
    if deep_supervision:
        outputs["deep_supervision"] = {
            scale: {t: torch.randn(batch, CHANNELS[t], *hw, requires_grad=True) for t in tasks}
            for scale, hw in SCALES.items()
        }
    return outputs


@pytest.mark.parametrize(
    "tasks, num_terms",
    [(("semseg", "depth", "normals"), 15), (("semseg", "depth"), 10), (("semseg", "human_parts", "sal"), 15)],
    ids=["nyud3", "nyud2", "pascal3"],
)
def test_scheme_term_count_and_total(tasks, num_terms):
    criterion = MultiTaskLoss(tasks)
    outputs, targets = _outputs(tasks), {t: _target(t) for t in tasks}
    result = criterion(outputs, targets)
    terms = loss_terms(result)
    assert len(terms) == num_terms
    expected_total = sum(TASKS[name.split("/")[-1]].weight * value for name, value in terms.items())
    assert torch.allclose(result["total"], expected_total)
    assert set(result) == {*tasks, "deep_supervision", "total"}
    assert set(result["deep_supervision"]) == set(SCALES)


def test_scheme_terms_are_the_task_losses_of_upsampled_predictions():
    tasks = ("semseg", "depth", "normals")
    criterion = MultiTaskLoss(tasks, weights={"semseg": 1.44, "depth": 1.15})
    outputs, targets = _outputs(tasks), {t: _target(t) for t in tasks}
    targets["depth"][0, 0, :4] = IGNORE
    result = criterion(outputs, targets)
    assert criterion.weights == {"semseg": 1.44, "depth": 1.15, "normals": 10.0}  # normals: the table's default
    manual_total = 0.0
    for task in tasks:
        loss = LOSSES[TASKS[task].loss]
        final = loss(outputs[task], targets[task])
        assert torch.allclose(result[task], final)  # unweighted
        manual_total = manual_total + criterion.weights[task] * final
        for scale in SCALES:
            low = outputs["deep_supervision"][scale][task]
            up = F.interpolate(low, size=SIZE, mode="bilinear", align_corners=False)
            term = loss(up, targets[task])
            assert torch.allclose(result["deep_supervision"][scale][task], term)
            manual_total = manual_total + criterion.weights[task] * term
    assert torch.allclose(result["total"], manual_total)


def test_scheme_backpropagates_into_every_prediction():
    tasks = ("semseg", "depth", "normals")
    outputs, targets = _outputs(tasks), {t: _target(t) for t in tasks}
    MultiTaskLoss(tasks)(outputs, targets)["total"].backward()
    leaves = [outputs[t] for t in tasks] + [p for scale in outputs["deep_supervision"].values() for p in scale.values()]
    assert all(leaf.grad is not None and leaf.grad.abs().sum() > 0 for leaf in leaves)


def test_scheme_uses_the_edge_pos_weight():
    tasks = ("semseg", "edge")
    outputs, targets = _outputs(tasks, deep_supervision=False), {t: _target(t) for t in tasks}
    result = MultiTaskLoss(tasks)(outputs, targets)
    assert torch.allclose(result["edge"], balanced_bce_loss(outputs["edge"], targets["edge"], pos_weight=0.95))
    assert not torch.allclose(result["edge"], balanced_bce_loss(outputs["edge"], targets["edge"]))
    assert torch.allclose(result["total"], result["semseg"] + 50.0 * result["edge"])
    on_nyud = MultiTaskLoss(tasks, dataset="nyud")(outputs, targets)["edge"]
    assert torch.allclose(on_nyud, balanced_bce_loss(outputs["edge"], targets["edge"], pos_weight=0.8))
    chosen = MultiTaskLoss(tasks, dataset="nyud", options={"edge": {"pos_weight": 0.5}})(outputs, targets)["edge"]
    assert torch.allclose(chosen, balanced_bce_loss(outputs["edge"], targets["edge"], pos_weight=0.5))


def test_loss_options_are_checked():
    with pytest.raises(ValueError, match=r"loss options name tasks \['depth'\]"):
        MultiTaskLoss(["edge"], options={"depth": {}})
    with pytest.raises(ValueError, match=r"balanced_bce takes \['pos_weight'\], got \['weight'\]"):
        MultiTaskLoss(["edge"], options={"edge": {"weight": 1.0}})
    with pytest.raises(ValueError, match=r"cross_entropy takes none, got \['pos_weight'\]"):
        MultiTaskLoss({"semseg": 4}, options={"semseg": {"pos_weight": 1.0}})


def test_scheme_without_deep_supervision():
    tasks = {"semseg": 4, "depth": 1}  # a {task: channels} mapping, as build_model takes
    outputs, targets = _outputs(tasks, deep_supervision=False), {t: _target(t) for t in tasks}
    result = MultiTaskLoss(tasks)(outputs, targets)
    assert set(result) == {"semseg", "depth", "total"} and len(loss_terms(result)) == 2


def test_scheme_under_autocast_is_float32():
    tasks = ("semseg", "depth", "normals")
    outputs, targets = _outputs(tasks), {t: _target(t) for t in tasks}
    expected = MultiTaskLoss(tasks)(outputs, targets)["total"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = {t: outputs[t].bfloat16() for t in tasks}
        low["deep_supervision"] = {
            s: {t: p.bfloat16() for t, p in preds.items()} for s, preds in outputs["deep_supervision"].items()
        }
        total = MultiTaskLoss(tasks)(low, targets)["total"]
    assert total.dtype == torch.float32
    assert torch.allclose(total, expected, rtol=2e-2)


def test_scheme_errors():
    tasks = ("semseg", "depth")
    outputs, targets = _outputs(tasks), {t: _target(t) for t in tasks}
    with pytest.raises(ValueError, match="not among the loss's tasks"):
        MultiTaskLoss(tasks, weights={"normals": 10.0})
    with pytest.raises(ValueError, match="targets lacks the tasks \\['depth'\\]"):
        MultiTaskLoss(tasks)(outputs, {"semseg": targets["semseg"]})
    del outputs["deep_supervision"]["scale_2"]["depth"]
    with pytest.raises(ValueError, match="scale_2"):
        MultiTaskLoss(tasks)(outputs, targets)
    with pytest.raises(ValueError, match="unknown task"):
        MultiTaskLoss(["semseg", "height"])


def test_auxiliary_tasks_enter_the_deep_supervision_only():
    """MTI-Net's loss with auxiliary tasks: 2 final terms + 4 scales x (2 + 2) deep-supervision terms, each weighted
    by its task's weight; an auxiliary task's final output is not asked for, its targets are."""
    tasks, auxiliary = ("semseg", "depth"), {"edge": 1, "normals": 3}
    outputs = _outputs(tasks)
    outputs["deep_supervision"] = _outputs([*tasks, *auxiliary])["deep_supervision"]
    targets = {t: _target(t) for t in [*tasks, *auxiliary]}
    criterion = MultiTaskLoss(tasks, weights={"edge": 50.0, "normals": 2.0}, auxiliary=auxiliary)
    result = criterion(outputs, targets)
    terms = loss_terms(result)
    assert len(terms) == 2 + 4 * 4 and "edge" not in result and "deep_supervision/scale_3/edge" in terms
    expected = sum(criterion.weights[name.rsplit("/", 1)[-1]] * term for name, term in terms.items())
    assert torch.allclose(result["total"], expected) and criterion.weights["normals"] == 2.0
    with pytest.raises(ValueError, match="targets lacks the tasks \\['normals'\\]"):
        criterion(outputs, {t: targets[t] for t in ("semseg", "depth", "edge")})
    with pytest.raises(ValueError, match="repeat"):
        MultiTaskLoss(tasks, auxiliary=["depth"])
