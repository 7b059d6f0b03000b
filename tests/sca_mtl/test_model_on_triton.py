"""The models end to end on the Triton kernels (through Triton's interpreter without a GPU).

For every registered model, the same weights and input under `kernels="torch"` and `kernels="triton"` give the same
outputs (all of them, deep supervision included) and the same gradient for every parameter, to fp32 rounding; and
`sca-mtl train --kernels triton` trains a step of SCA-MTL on a tiny synthetic set; torch.compile traces it into one
graph of opaque kernel calls. Each counts the Triton launches, so that it fails if a layer ran the PyTorch reference
instead.
"""

from __future__ import annotations

import collections
import copy
import importlib
import json
import math

import pytest
import torch

from sca_mtl.cli import main
from sca_mtl.models import MODELS, build_model
from tests._utils import record_calls

TASKS = {"semseg": 40, "depth": 1, "normals": 3}
# The Triton launches of one forward and backward of each model with TASKS (or its first task, for single_task): every
# op call of the model, forward and backward. SCA-MTL: CTAM one per scale, CSAM 3 + 2 + 1 with the tasks batched, ATT
# 4 x 2 and FPMA 3 window attentions, aggregation and classifier per task; MTI-Net and the baselines: one
# HighResolutionHead per task; PAD-Net: the branch fusion; ATRC: its T^2 global contexts in one call.
LAUNCHES = {
    "atrc_global": {"linear_cross_attention": 1},
    "sca_mtl": {"linear_cross_attention": 10, "window_attention": 11, "concat_conv1x1": 6},
    "mti_net": {"concat_conv1x1": 3},
    "pad_net": {"concat_conv1x1": 1},
    "mtl_baseline": {"concat_conv1x1": 3},
    "single_task": {"concat_conv1x1": 1},
}
# 32 x 64: the ATT maps are 8 x 16 (padded to 14 x 21 for window 7, shifted by 3), 4 x 8, 2 x 4 and 1 x 2 (smaller
# than one window), CTAM's linear attentions attend within those, CSAM's across them, the aggregation upsamples x2..x8.
IMAGE_SHAPE = (2, 3, 32, 64)
OP_FREE = {"densemtl"}  # models whose layers are all plain PyTorch: nothing to compare on Triton
DETERMINISTIC = {"sca_mtl": dict(att_drop_path=0.0), "atrc_global": dict(dropout=0.0)}
# The interpreter runs a kernel's programs one after another: the launchers size their grids for 4 SMs, not 132.
# The splits over the length axis and the fixed-order reduces still run (with fewer programs); the kernel tests
# cover the 132-SM grids.
INTERPRETER_SM_COUNT = 4
LAUNCHERS = {
    "linear_attention": ("linear_cross_attention_fwd", "linear_cross_attention_bwd"),
    "window_attention": ("window_attention_fwd", "window_attention_bwd"),
    "concat_conv": ("concat_conv1x1_fwd", "concat_conv1x1_bwd"),
}
# "To fp32 rounding" is measured against the model in float64 (PyTorch references): the Triton model's error must be
# of the size of the float32 reference model's own error. Gradients that arise from cancellation (the key projections'
# behind the linear attention, the biases of a BatchNorm whose per-channel shift a later train-mode BatchNorm removes,
# exactly zero) carry a rounding error of the size of the terms that cancel, not of the result: a per-parameter
# relative tolerance would be meaningless there, a comparison with float32's own error is not.
# Two float32 computations with different summation orders land at errors of the same size (measured: at most 2x the
# reference's on every output and gradient of this test); a wrong gradient would be orders of magnitude off.
ERROR_FACTOR = 4
# Compiled against eager, both in bf16: each differs from exact by independent roundings of 2^-8 relative (fused or
# not) in ~100 layers in sequence, a random walk of about sqrt(100) * 2^-8 = 4e-2 relative RMSE.
BF16_MODEL_RTOL = 5e-2


@pytest.fixture
def kernel_calls(monkeypatch):
    """The names of the Triton launchers called, in order, with the grids sized for INTERPRETER_SM_COUNT SMs."""
    calls = []
    for module_name, launchers in LAUNCHERS.items():
        module = importlib.import_module(f"kernels.{module_name}")
        monkeypatch.setattr(module, "sm_count", lambda device: INTERPRETER_SM_COUNT)
        record_calls(monkeypatch, module, launchers, calls)
    return calls


def all_outputs(outputs: dict) -> list[torch.Tensor]:
    """The task outputs and every deep-supervision output, in a fixed order."""
    tasks = [task for task in TASKS if task in outputs]
    tensors = [outputs[task] for task in tasks]
    for scale in outputs.get("deep_supervision", {}).values():
        tensors += [scale[task] for task in tasks]
    return tensors


def forward_backward(model, image: torch.Tensor) -> tuple[list, dict]:
    """Outputs and parameter gradients for a random upstream gradient on every output (the same for any model)."""
    outputs = all_outputs(model(image.to(next(model.parameters()).dtype)))
    generator = torch.Generator().manual_seed(2)
    loss = sum((y * torch.randn(y.shape, generator=generator, dtype=y.dtype)).sum() for y in outputs)
    loss.backward()
    return [y.detach() for y in outputs], {name: p.grad for name, p in model.named_parameters()}


def max_error(got: torch.Tensor, exact: torch.Tensor) -> float:
    return (got.double() - exact).abs().max().item()


def tasks_of(name: str) -> dict:
    return dict(list(TASKS.items())[:getattr(MODELS[name], "max_tasks", None)])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAUNCHES))
def test_triton_model_matches_torch_model(name, kernel_calls):
    assert set(LAUNCHES) | OP_FREE == set(MODELS), "every registered model has its launches listed here"
    torch.manual_seed(0)
    # no stochastic depth or dropout: float64 draws other random numbers than float32
    options = DETERMINISTIC.get(name, {})
    reference = build_model(name, tasks_of(name), kernels="torch", **options)
    exact = copy.deepcopy(reference).double()
    model = build_model(name, tasks_of(name), kernels="triton", **options)
    model.load_state_dict(reference.state_dict())
    image = torch.randn(IMAGE_SHAPE)

    exact_outputs, exact_grads = forward_backward(exact, image)
    reference_outputs, reference_grads = forward_backward(reference, image)
    assert not kernel_calls
    outputs, grads = forward_backward(model, image)

    assert collections.Counter(kernel_calls) == {
        f"{op}_{direction}": count for op, count in LAUNCHES[name].items() for direction in ("fwd", "bwd")
    }
    failures = []
    pairs = [(f"output {i}", outputs[i], reference_outputs[i], exact_outputs[i]) for i in range(len(outputs))]
    pairs += [(name, grads[name], reference_grads[name], exact_grads[name]) for name in exact_grads]
    for name, got, fp32, exact in pairs:
        assert got is not None and got.dtype == torch.float32, name
        error, fp32_error = max_error(got, exact), max_error(fp32, exact)
        # the floor: one float32 ulp of the largest exact entry (float32 can be exact where cancellation leaves 0)
        floor = torch.finfo(torch.float32).eps * exact.abs().max().item()
        if error > ERROR_FACTOR * max(fp32_error, floor):
            failures.append(f"{name}: error {error:.3g} vs float64, float32 reference's {fp32_error:.3g}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sca_mtl", "atrc_global"])
def test_train_step_on_triton_kernels(tmp_path, tiny_overrides, kernel_calls, name):
    run = tmp_path / "run"
    assert main(["train", "--config", "synthetic_sca_mtl", "--out", str(run), "--max-steps", "1",
                 "--kernels", "triton", "--seed", "1", "--no-progress", *tiny_overrides, f"model.name={name}"]) == 0
    for op, count in LAUNCHES[name].items():  # the training step's and the evaluation's forward calls
        assert kernel_calls.count(f"{op}_bwd") == count and kernel_calls.count(f"{op}_fwd") > count
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1]
    assert all(math.isfinite(value) for value in train[0]["losses"].values())
    assert (run / "last.pt").exists()


@pytest.mark.slow
def test_compiled_model_is_one_graph_with_opaque_kernel_calls(kernel_calls):
    """torch.compile(fullgraph=True) of the Triton model traces its whole forward into one graph (a graph break is an
    error) in which every op call is one `sca_mtl` custom operator: what Inductor receives on a GPU. The sizes are
    symbolic (dynamic=True), as after any recompilation for a new input size, so that no shape check in the way
    needs a concrete size. Run eagerly, that graph gives the model's outputs bitwise."""
    graphs = []

    def capture(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch.manual_seed(0)
    model = build_model("sca_mtl", TASKS, kernels="triton").eval()
    image = torch.randn(1, *IMAGE_SHAPE[1:])  # one image: the interpreter runs the forward twice here
    with torch.no_grad():
        expected = all_outputs(model(image))
        kernel_calls.clear()
        torch._dynamo.reset()  # no earlier compilation of the model's code in this process decides anything here
        outputs = all_outputs(torch.compile(model, backend=capture, fullgraph=True, dynamic=True)(image))

    (graph,) = graphs
    custom_ops = collections.Counter(
        str(node.target) for node in graph.graph.nodes if str(node.target).startswith("sca_mtl.")
    )
    assert custom_ops == {
        "sca_mtl.linear_cross_attention_fwd.default": 10,
        "sca_mtl.window_attention_fwd.default": 11,
        "sca_mtl.concat_conv1x1_fwd.default": 6,
    }
    assert collections.Counter(kernel_calls) == {
        "linear_cross_attention_fwd": 10, "window_attention_fwd": 11, "concat_conv1x1_fwd": 6
    }
    assert all(torch.equal(got, want) for got, want in zip(outputs, expected, strict=True))


@pytest.mark.gpu
def test_compiled_model_on_triton_under_bf16_autocast():
    """torch.compile of the model on the Triton kernels (custom operators: opaque calls) under bf16 autocast gives
    eager's outputs in evaluation mode (no stochastic depth, whose random draws differ under the compiler), and
    trains: finite gradients for every parameter."""
    torch.manual_seed(0)
    model = build_model("sca_mtl", TASKS, kernels="triton").cuda()
    image = torch.randn(2, 3, 128, 160, device="cuda")
    compiled = torch.compile(model)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        model.eval()
        with torch.no_grad():
            expected, outputs = all_outputs(model(image)), all_outputs(compiled(image))
        for got, want in zip(outputs, expected):
            relative_rmse = ((got.float() - want.float()).square().mean().sqrt() / want.float().square().mean().sqrt())
            assert relative_rmse.item() < BF16_MODEL_RTOL
        model.train()
        loss = sum(y.float().square().mean() for y in all_outputs(compiled(image)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
