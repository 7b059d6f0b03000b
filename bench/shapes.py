"""The op calls of one SCA-MTL forward pass, recorded from the model itself: the single source of the model's op
shapes for the benchmarks, the GPU session, the profiling repros, the static cost report and the GPU tests.

`model_op_calls()` builds the model (NYUD-v2's three tasks by default), moves it to PyTorch's meta device and runs one
forward pass at the benchmark size (480 x 640, batch 8) with every op-calling layer's bound op wrapped by a recorder:
shapes only, no data and no arithmetic, in about a second. Each distinct call (op, argument shapes, keyword
arguments) is one `OpCall`, with the layers that make it; its backward has the same shapes. `make_args` builds real
inputs for a call, repeated inputs included (the aggregation passes F1 three times: the same tensor object).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

NYUD_TASKS = {"semseg": 40, "depth": 1, "normals": 3}
MODEL_SIZE = (480, 640)  # NYUD-v2 (KERNELS.md "The shapes that matter")
MODEL_BATCH = 8
OP_ATTRIBUTES = ("_attend", "_conv")  # where sca_mtl/models/layers.py keeps each layer's bound op


@dataclass(frozen=True)
class TensorRef:
    """The `index`-th distinct tensor of a call (a repeated input refers to one tensor)."""

    index: int


@dataclass(frozen=True)
class OpCall:
    op: str  # the public op: linear_cross_attention, window_attention, concat_conv1x1
    case: str  # readable name of the call, e.g. "window_attention/att-120x160-shift3"
    tensors: tuple[tuple[int, ...], ...]  # shapes of the call's distinct tensors (contiguous)
    args: tuple  # positional arguments: TensorRef, lists of TensorRef, None or Python scalars
    kwargs: tuple[tuple[str, object], ...]
    callers: tuple[str, ...]  # module paths of the layers making this call in one forward pass

    @property
    def count(self) -> int:
        """Calls per forward pass (and per backward pass) with exactly these shapes."""
        return len(self.callers)

    def stacked_shape(self, position: int) -> tuple[int, ...]:
        """The shape of positional argument `position`: a tensor's, or, for a list of parts (the linear attention's
        stacked inputs), that of their concatenation along the batch."""
        return _stacked_shape(self.tensors, self.args[position])


def model_op_calls(tasks: dict[str, int] | None = None, size: Sequence[int] = MODEL_SIZE, batch: int = MODEL_BATCH,
                   model: str = "sca_mtl") -> list[OpCall]:
    """The distinct op calls of one forward pass of `model` on a (batch, 3, *size) image batch, in call order."""
    return list(_recorded_calls(model, tuple(sorted((tasks or NYUD_TASKS).items())), tuple(size), batch))


def make_args(call: OpCall, dtype: torch.dtype, device, *, requires_grad: bool = False,
              generator: torch.Generator | None = None) -> tuple[tuple, dict]:
    """(args, kwargs) for `kernels.<call.op>`: standard-normal tensors of the recorded shapes (the op's inputs are
    normalised activations and small weights in the model; the benchmarks only need their sizes)."""
    tensors = [torch.randn(shape, dtype=dtype, device=device, generator=generator, requires_grad=requires_grad)
               for shape in call.tensors]

    def build(arg):
        if isinstance(arg, TensorRef):
            return tensors[arg.index]
        if isinstance(arg, tuple):
            return [build(a) for a in arg]
        return arg

    return tuple(build(a) for a in call.args), {key: build(value) for key, value in call.kwargs}


@functools.cache
def _recorded_calls(model_name: str, tasks: tuple, size: tuple, batch: int) -> tuple[OpCall, ...]:
    from sca_mtl.models import build_model

    model = build_model(model_name, dict(tasks), kernels="torch").to("meta").eval()
    recorded: dict[tuple, list[str]] = {}
    first: dict[tuple, tuple] = {}
    for path, module in model.named_modules():
        for attribute in OP_ATTRIBUTES:
            if hasattr(module, attribute):
                setattr(module, attribute, _recorder(getattr(module, attribute), path, recorded, first))
    with torch.no_grad():
        model(torch.empty(batch, 3, *size, device="meta"))
    return tuple(OpCall(*first[key], callers=tuple(callers)) for key, callers in recorded.items())


def _recorder(fn, path: str, recorded: dict, first: dict):
    op = fn.__name__.removesuffix("_ref")
    reference = getattr(fn, "__wrapped__", fn)  # past the autocast wrapper, which knows no meta device

    def record(*args, **kwargs):
        tensors: list[torch.Tensor] = []

        def spec(arg):
            if isinstance(arg, torch.Tensor):
                found = next((i for i, t in enumerate(tensors) if t is arg), None)
                if found is None:
                    tensors.append(arg)
                    found = len(tensors) - 1
                return TensorRef(found)
            if isinstance(arg, (list, tuple)):
                return tuple(spec(a) for a in arg)  # hashable; the ops take any sequence
            return arg

        arg_specs = tuple(spec(a) for a in args)
        kwarg_specs = tuple((key, spec(value)) for key, value in sorted(kwargs.items()))
        shapes = tuple(tuple(t.shape) for t in tensors)
        key = (op, shapes, arg_specs, kwarg_specs)
        if key not in recorded:
            recorded[key] = []
            first[key] = (op, _case_name(op, shapes, arg_specs, dict(kwarg_specs)), shapes, arg_specs, kwarg_specs)
        recorded[key].append(path)
        return reference(*args, **kwargs)

    return record


def _case_name(op: str, shapes: tuple, args: tuple, kwargs: dict) -> str:
    """A readable name: the op's map sizes and what distinguishes its calls."""
    if op == "window_attention":
        _, height, width, three_c = shapes[0]
        shift = kwargs.get("shift_size")
        return f"{op}/{height}x{width}-c{three_c // 3}-h{kwargs['num_heads']}{f'-shift{shift}' if shift else ''}"
    if op == "linear_cross_attention":
        (stacked, width, lq), (_, _, ls) = (_stacked_shape(shapes, arg) for arg in args[:2])
        return f"{op}/b{stacked}-d{width}-{lq}{'' if lq == ls else f'-from-{ls}'}"
    inputs, weight = args[0], args[1]
    sizes = sorted({shapes[ref.index][2:] for ref in inputs}, reverse=True)
    return (f"{op}/{len(inputs)}in-{'+'.join(f'{h}x{w}' for h, w in sizes)}-"
            f"{sum(shapes[ref.index][1] for ref in inputs)}to{shapes[weight.index][0]}")


def _stacked_shape(shapes: tuple, arg) -> tuple[int, ...]:
    refs = arg if isinstance(arg, tuple) else (arg,)
    first = shapes[refs[0].index]
    return (first[0] * len(refs), *first[1:])
