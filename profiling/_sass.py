"""What the compiler makes of one kernel launch for Hopper (sm_90), without a GPU: the launch compiled with the JIT's
own argument specialisation, its resources as the cubin declares them, and its SASS counted by kind of instruction,
per loop, with the loops' trip counts for this launch's arguments.

Specialisation. `Specialiser` runs the binder that `JITFunction.run` builds (`create_function_from_signature`) and
the JIT's own `_pack_args` on the launch's arguments, with the backend of sm_90: integers equal to 1 become constants,
pointers and integers divisible by 16 get `tt.divisibility = 16` (unless the parameter is in do_not_specialize), as
on the GPU. The arguments here are CPU tensors. Their pointers' divisibility matches the GPU's because both
allocators align a tensor's storage well beyond 16 bytes (PyTorch's CPU allocator to 64, CUDA's caching allocator to
512; `storage_aligned` checks it): a pointer's divisibility by 16 then depends only on the tensor's storage offset,
which the launchers compute alike on both devices. The concat conv's row unit (16 where its inputs' address
differences are multiples of 16 elements) comes out alike for the same reason.

Resources and SASS come from the cubin the compile produced (kernels/_cubin.py, through the wheel's cuobjdump):
registers, stack and static shared memory (`-res-usage`), and the instruction listing (`-sass`). Spilled bytes are
the widths of the local-memory stores (STL) and loads (LDL): Triton kernels use local memory for nothing else.

Loops and trip counts. Loops in SASS are the spans of backward branches, nested by containment. Their trip counts come
from the Triton IR of the same compile (TTIR): the bounds of every `scf.for` are evaluated for one program from the
launch's scalar arguments, grid and constants, and from scalar loads of its small integer tables (`_LoopBounds`); an
inner loop whose bounds depend on an enclosing loop's induction variable (or on a scalar it carries from trip to trip)
is evaluated for each of its iterations and counted by its average trips per iteration (`_evaluate_loops`); loops whose
bounds need a tensor load or a loop's result stay unknown. This is done for program 0 and up to 15 programs spread over
the grid (`sampled_programs`): the launch's figures are their mean, and the heaviest's are kept beside them
(`dynamic_counts`), for the cost model's bound on launches of uneven programs. The TTIR loops are matched to the SASS
loops in program order, level by level, after rewriting a TTIR level as the backend may have compiled it where the
counts differ (`assign_trips`); where the nests still disagree, the SASS loops count as one iteration and the figures
that depend on trips are lower estimates.
Dynamic counts (instructions issued per warp, bytes requested, tensor-core FLOPs) weight each SASS instruction by the
trip counts of the loops around it.

Program 0's path. A kernel's SASS holds every branch of its code, while each program runs one arm of a branch on
its id (the linear attention's non-fused source pass computes dk in some programs, dv in the others) and no program
runs an arm that a runtime switch turns off (the concat conv's residual). So the dynamic counts come from a second
compile (`Specialiser.compile_ttir`) of the kernel's TTIR in which every `scf.if` whose condition program 0's
arguments decide (`decided_branches`) has that condition as a constant (`program_zero_path`); the compiler drops the
arms program 0 does not run. Registers, shared memory and the static counts stay those of the kernel itself. Work
that the kernel does before a branch only for an arm program 0 skips is dropped from that compile too, while the
kernel does it: kernels keep such work inside the branch (the concat conv's d bias row sums).

Branches in loops. A branch in a loop's body whose condition changes from trip to trip (the aggregation adjoint
stores a source row only when the output row moves past it; the window attention backward masks only the windows
that cross the shifted image's border) would count its arm on every trip. Its condition is evaluated trip by trip,
with the loop's scalar iteration arguments carried as the body yields them (`_evaluate_loops`), which gives the
share of trips that take it; the bytes in its arms count at that share and the rest. For the SASS, which cannot be
split into arms reliably, the kernel is compiled once more with the condition false (`program_zero_path`), and, if
the branch has an else arm, once with it true: the difference of the weighted counts of the kernel and of such a
compile is what the arm that compile drops adds on every trip, and only its share is counted
(`_with_branch_shares`). A branch nested in another branch of the loop keeps its arms counted in full.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

from kernels._cubin import Instruction, instructions, resources, spill_bytes, width_bytes

WARPGROUP = 4  # warps that issue one Hopper wgmma together

TENSOR_CORE_OPCODES = ("HGMMA", "HMMA", "IMMA", "IGMMA", "QGMMA", "BMMA", "DMMA")
ASYNC_COPY_OPCODES = ("LDGSTS", "UTMALDG", "UTMASTG", "UBLKCP", "UTMAREDG", "UBLKRED")


# ---------------------------------------------------------------------------------------------------------------------
# Compiling a launch as the JIT would
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Specialisation:
    """What `JITFunction.run` would compile for a launch: Triton's signature, constants, attributes and options,
    plus the values of the arguments that reach the kernel as scalars (the trip-count evaluation reads them)."""

    kernel: object  # the JITFunction
    signature: dict
    constexprs: dict
    attrs: dict
    options: object  # the backend's options (num_warps, num_stages, ...)
    scalars: tuple  # per non-constant argument in order: its value (int, float) or None for a tensor
    tensors: tuple  # per non-constant argument in order: (data_ptr, bytes spanned) of a tensor, else None
    grid: tuple
    tables: tuple = ()  # per non-constant argument in order: a small integer tensor's values (`_table`), else None

    def key(self) -> tuple:
        """Identifies the compiled kernel (not the grid or scalar values)."""
        return (self.kernel.__module__, self.kernel.__name__, repr(self.signature), repr(self.constexprs),
                repr(self.attrs), repr(sorted(self.options.__dict__.items(), key=str)))

    def __reduce__(self):
        """Pickled with its kernel named by module and name (a JITFunction does not pickle): to be compiled in another
        process (profiling/compile_cache.py)."""
        values = [getattr(self, field.name) for field in fields(self) if field.name != "kernel"]
        return _specialisation, (self.kernel.__module__, self.kernel.__name__, *values)


def _specialisation(module: str, name: str, *values) -> Specialisation:
    return Specialisation(getattr(importlib.import_module(module), name), *values)


class Specialiser:
    """The JIT's binder per kernel, for the Hopper backend (made once: building a binder execs Python source)."""

    def __init__(self) -> None:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import make_backend

        from kernels._aot import HOPPER

        self.target = GPUTarget(*HOPPER)
        self.backend = make_backend(self.target)
        self._binders: dict = {}

    def __call__(self, kernel, grid, args: tuple, kwargs: dict) -> Specialisation:
        from triton.runtime.jit import JITFunction, create_function_from_signature

        binder = self._binders.get(kernel)
        if binder is None:
            binder = self._binders[kernel] = create_function_from_signature(kernel.signature, kernel.params,
                                                                            self.backend)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = JITFunction._pack_args(kernel, self.backend, kwargs, bound,
                                                                      specialization, options)
        if callable(grid):
            grid = grid(bound)
        grid = tuple(grid) + (1,) * (3 - len(grid))
        values = [value for kind, value in zip(signature.values(), bound.values()) if kind != "constexpr"]
        tensors = tuple((v.data_ptr(), _span_bytes(v)) if hasattr(v, "data_ptr") else None for v in values)
        scalars = tuple(None if tensor else value for tensor, value in zip(tensors, values))
        tables = tuple(_table(v) if tensor else None for tensor, v in zip(tensors, values))
        return Specialisation(kernel, signature, constexprs, attrs, options, scalars, tensors, grid, tables)

    def compile(self, spec: Specialisation):
        import triton
        from triton.compiler import ASTSource

        source = ASTSource(spec.kernel, spec.signature, spec.constexprs, spec.attrs)
        return triton.compile(source, target=self.target, options=spec.options.__dict__)

    def compile_ttir(self, ttir: str, spec: Specialisation):
        """`ttir` (a kernel's TTIR, edited: `program_zero_path`) compiled with `spec`'s options. It first goes through
        the backend's TTIR passes again, whose canonicalisation drops the branches decided by constants (triton 3.6's
        later passes fail on them otherwise): a compile from a .ttir file starts after those passes."""
        import triton
        from triton._C.libtriton import ir

        with tempfile.TemporaryDirectory() as folder:
            edited = os.path.join(folder, "edited.ttir")
            with open(edited, "w") as f:
                f.write(ttir)
            context = ir.context()
            ir.load_dialects(context)
            self.backend.load_dialects(context)
            module = ir.parse_mlir_module(edited, context)
            module.context = context
            module = self.backend.make_ttir(module, {}, spec.options, self.target.arch)
            canonical = os.path.join(folder, "canonical.ttir")
            with open(canonical, "w") as f:
                f.write(str(module))
            return triton.compile(canonical, target=self.target, options=spec.options.__dict__)


# Integer tensors of at most this many elements are read as tables: the values a kernel loads from them to bound its
# loops (the concat conv's per-group sizes) take part in the trip counts.
TABLE_ELEMENTS = 4096


def _table(tensor) -> tuple | None:
    """The values of a small contiguous integer tensor from its first element on, else None."""
    if tensor.is_floating_point() or tensor.is_complex() or tensor.numel() > TABLE_ELEMENTS \
            or not tensor.is_contiguous():
        return None
    return tuple(tensor.flatten().tolist())


def _span_bytes(tensor) -> int:
    """Bytes from a tensor's first element to its last (its own extent, for a view into a larger buffer)."""
    if not tensor.numel():
        return 0
    return (1 + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride()))) * tensor.element_size()


# ---------------------------------------------------------------------------------------------------------------------
# The cubin: resources and instructions
# ---------------------------------------------------------------------------------------------------------------------


def storage_aligned(tensor) -> bool:
    """Whether a tensor's storage starts 16-byte aligned, as every CUDA allocation does (see the docstring)."""
    return tensor.untyped_storage().data_ptr() % 16 == 0


def mma_flops(instruction: Instruction) -> tuple[str, int]:
    """(operand type, FLOPs per warp) of a tensor-core instruction: HGMMA.MxNxK (a warpgroup's product, issued by its
    4 warps) or HMMA.MNK (one warp's, e.g. 16816 = m16 n8 k16); ("", 0) where the shape is not spelled out."""
    shape = next((m for m in instruction.modifiers if re.fullmatch(r"\d+x\d+x\d+", m)), None)
    operand = next((m for m in reversed(instruction.modifiers) if m in ("BF16", "F16", "TF32", "E4M3", "E5M2")), "")
    if instruction.opcode.endswith("GMMA") and shape:
        m, n, k = (int(v) for v in shape.split("x"))
        return operand, 2 * m * n * k // WARPGROUP
    digits = next((m for m in instruction.modifiers if re.fullmatch(r"168\d+", m)), None)
    if instruction.opcode == "HMMA" and digits:
        return operand, 2 * 16 * 8 * int(digits[3:])
    return operand, 0


# ---------------------------------------------------------------------------------------------------------------------
# Loops: SASS structure, TTIR trip counts
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Loop:
    start: int  # address of the first instruction of the body (the backward branch's target)
    end: int  # address of the backward branch
    children: list
    trips: int | None = None  # iterations per program for this launch; None: unknown

    def contains(self, other: Loop) -> bool:
        return self.start <= other.start and other.end <= self.end and (self.start, self.end) != (other.start,
                                                                                                  other.end)


def sass_loops(listing: list[Instruction]) -> list[Loop]:
    """Top-level loops (with their nested ones) from the backward branches; a branch to itself (the trap after the
    last EXIT) is no loop. Several branches back to one target form one loop, to the last of them."""
    spans: dict[int, int] = {}
    for ins in listing:
        if ins.target is not None and ins.target < ins.address:
            spans[ins.target] = max(spans.get(ins.target, 0), ins.address)
    loops = sorted((Loop(start, end, []) for start, end in spans.items()), key=lambda loop: (loop.start, -loop.end))
    top: list[Loop] = []
    for loop in loops:
        _insert(top, loop)
    return top


def _insert(siblings: list[Loop], loop: Loop) -> None:
    parent = next((s for s in siblings if s.contains(loop)), None)
    if parent is None:
        siblings.append(loop)
    else:
        _insert(parent.children, loop)


@dataclass
class IrLoop:
    trips: int | None
    constant: bool  # bounds known at compile time (the backend may unroll it)
    children: list


_TTIR_FOR = re.compile(r"scf\.for (%\S+) = (%[\w.#]+) to (%[\w.#]+) step (%[\w.#]+)")
_TTIR_LOOP_RESULTS = re.compile(r"^\s*(%[\w.]+)(?::(\d+))? = scf\.for .*?iter_args\((.*?)\) ->")
_TTIR_IF = re.compile(r"scf\.if (%[\w.#]+)")
_TTIR_ITER_ARGS = re.compile(r"iter_args\((.*?)\) ->")
_TTIR_PAIR = re.compile(r"(%[\w.#]+) = (%[\w.#]+)")
_TTIR_YIELD = re.compile(r"^scf\.yield ([^:]*)")
_TTIR_MEMORY = re.compile(r"\btt\.(?:load|store) (%[\w.#]+)")
_TTIR_POINTER_TYPE = re.compile(r"(?:tensor<([\dx]+)x)?!tt\.ptr<(\w+)>")
_TTIR_VALUE = re.compile(r"%[\w.#]+")
_POINTER_OPS = ("tt.addptr", "tt.splat", "tt.broadcast", "tt.expand_dims", "tt.reshape", "tt.trans", "tt.advance")
_ELEMENT_BYTES = {"i1": 1, "i8": 1, "f8E4M3FN": 1, "f8E5M2": 1, "i16": 2, "f16": 2, "bf16": 2, "i32": 4, "f32": 4,
                  "i64": 8, "f64": 8}
_TTIR_DEF = re.compile(r"^\s*(%[\w.#]+)(?::\d+)? = ([\w.]+)\s*(.*)$")
_TTIR_FUNC = re.compile(r"tt\.func public @\w+\((.*)\) attributes")
_TTIR_FUNC_OPEN = re.compile(r"^\s*tt\.func public @.*\{\s*$", re.MULTILINE)
_TTIR_ARG = re.compile(r"(%[\w.#]+): ")
_BOOLEANS = {"true": 1, "false": 0}
_TTIR_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|true|false)(?=\s*(?::|loc\b|$))")


def _number(text: str) -> int | float:
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    return float(text) if any(c in text for c in ".e") else int(text)


@dataclass(frozen=True)
class _Pointer:
    """A scalar pointer into a table argument: the argument's index and an offset in elements."""

    argument: int
    offset: int


class _LoopBounds:
    """Evaluates the scalar SSA values of a TTIR function for one program of a launch (`program`: its x, y, z ids;
    program 0 by default): constants, arguments and integer and floating-point arithmetic on them (in Python's
    precision), and scalar loads from the launch's tables (`Specialisation.tables`); anything else (tensor loads, loop
    results) is unknown (None). Loop induction variables are unknown too, unless bound by `under`."""

    _BINARY = {
        "arith.addi": lambda a, b: a + b, "arith.subi": lambda a, b: a - b, "arith.muli": lambda a, b: a * b,
        "arith.divsi": lambda a, b: int(a / b) if b else None, "arith.divui": lambda a, b: a // b if b else None,
        "arith.remsi": lambda a, b: a - b * int(a / b) if b else None, "arith.remui": lambda a, b: a % b if b else None,
        "arith.minsi": min, "arith.maxsi": max, "arith.minui": min, "arith.maxui": max,
        "arith.ceildivsi": lambda a, b: -(-a // b) if b else None,
        "arith.floordivsi": lambda a, b: a // b if b else None,
        "arith.andi": lambda a, b: a & b, "arith.ori": lambda a, b: a | b, "arith.xori": lambda a, b: a ^ b,
        "arith.shli": lambda a, b: a << b,
        "arith.shrsi": lambda a, b: a >> b, "arith.shrui": lambda a, b: a >> b,
        "arith.addf": lambda a, b: a + b, "arith.subf": lambda a, b: a - b, "arith.mulf": lambda a, b: a * b,
        "arith.divf": lambda a, b: a / b if b else None, "arith.minimumf": min, "arith.maximumf": max,
        "arith.minnumf": min, "arith.maxnumf": max,
    }
    _COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "slt": lambda a, b: a < b,
                "sle": lambda a, b: a <= b, "sgt": lambda a, b: a > b, "sge": lambda a, b: a >= b,
                "ult": lambda a, b: a < b, "ule": lambda a, b: a <= b, "ugt": lambda a, b: a > b,
                "uge": lambda a, b: a >= b}

    def __init__(self, ttir: str, scalars: tuple, grid: tuple, tables: tuple = (), program: tuple = (0, 0, 0)):
        parsed = _parse_ttir(ttir)
        self.defs, self.arguments = parsed.defs, parsed.arguments
        self.tables = dict(enumerate(tables))
        self.inputs = {name: value if isinstance(value, (int, float)) else
                       _Pointer(index, 0) if self.tables.get(index) is not None else None
                       for index, (name, value) in enumerate(zip(self.arguments, scalars))}
        self.values: dict = dict(self.inputs)
        self.grid = grid
        self.program = program

    def __call__(self, name: str):
        if name not in self.values:
            self.values[name] = None  # guards against cycles
            self.values[name] = self._evaluate(name, self)
        return self.values[name]

    def under(self, bindings: dict) -> Callable[[str], object]:
        """The evaluation with loop induction variables bound (name -> value); its own cache, as everything computed
        from them differs per binding."""
        if not bindings:
            return self
        values = {**self.inputs, **bindings}

        def lookup(name: str):
            if name not in values:
                values[name] = None
                values[name] = self._evaluate(name, lookup)
            return values[name]

        return lookup

    def _evaluate(self, name: str, lookup: Callable[[str], object]):
        if name not in self.defs:
            return None
        op, rest = self.defs[name]
        if op == "arith.constant":
            found = _TTIR_NUMBER.match(rest)
            return None if found is None else _number(found.group(1))
        if op == "tt.get_program_id":
            return self.program["xyz".index(rest.split()[0])]
        if op == "tt.get_num_programs":
            return self.grid["xyz".index(rest.split()[0])]
        operands, _, types = rest.partition(" : ")
        values = [lookup(o) for o in _TTIR_VALUE.findall(operands)]
        if any(v is None for v in values):
            return None
        if op == "arith.select" and len(values) == 3:
            return values[1] if values[0] else values[2]
        if op == "tt.addptr" and len(values) == 2 and isinstance(values[0], _Pointer):
            return _Pointer(values[0].argument, values[0].offset + values[1])
        if op == "tt.load" and len(values) == 1 and isinstance(values[0], _Pointer) and types.startswith("!tt.ptr"):
            table = self.tables[values[0].argument]
            return table[values[0].offset] if 0 <= values[0].offset < len(table) else None
        if any(isinstance(v, _Pointer) for v in values):
            return None
        if op in self._BINARY and len(values) == 2:
            return self._BINARY[op](*values)
        if op in ("arith.extsi", "arith.extui", "arith.trunci", "arith.index_cast", "arith.extf", "arith.truncf") \
                and len(values) == 1:
            return values[0]
        if op in ("arith.sitofp", "arith.uitofp") and len(values) == 1:
            return float(values[0])
        if op in ("arith.fptosi", "arith.fptoui") and len(values) == 1:
            return int(values[0])
        if op == "arith.cmpi" and len(values) == 2:
            predicate = rest.split(",")[0].strip()
            return int(self._COMPARE[predicate](*values)) if predicate in self._COMPARE else None
        return None


@dataclass
class _Region:
    factor: float  # executions per execution of the enclosing region: trips (unknown: 1), or a branch's share
    loop: IrLoop | None = None
    taken: float | None = None  # of an scf.if: the share of its executions that take it (0/1 where decided)


# Loop nests evaluated iteration by iteration (where an inner loop's bounds depend on an outer one's induction
# variable) up to this many evaluations of inner bounds; beyond it, inner loops whose bounds need them stay unknown.
MAX_EVALUATED_ITERATIONS = 20000


@dataclass
class _ForLoop:
    """An scf.for of the TTIR, in program order: its induction variable, its bounds' SSA names, the enclosing loop, its
    iteration arguments (name, initial value) and what its body yields for them."""

    variable: str
    bounds: tuple  # (lower, upper, step)
    parent: int | None  # index of the enclosing loop in program order
    carried: tuple = ()  # ((name, initial value's name), ...)
    yields: tuple = ()  # the names the body yields, one per carried value


@dataclass
class _Branch:
    """An scf.if of the TTIR, in program order: its condition's SSA name, the innermost loop around it, if it lies
    directly in that loop's body (not inside another branch of it: its share of the loop's trips would then be a share
    of the enclosing branch's), and whether it has an else arm."""

    condition: str
    loop: int | None  # index of the loop in program order; None outside loops or nested in a branch of the loop
    has_else: bool = False


@dataclass(frozen=True)
class _Ttir:
    """A TTIR function parsed once (`_parse_ttir`) for the evaluations of every sampled program.

    events: its structure in program order: ("memory", pointer, tile bytes) at a tt.load or tt.store; ("yield",
    operands) at an scf.yield; at a line that opens a region ("for", induction variable, (lower, upper, step),
    ((iteration argument, initial value), ...)), ("if", condition) or ("open",); ("else",) at `} else {`; ("close",)
    at the `}` that closes a region (the one with its opening line's indentation)."""

    defs: dict  # SSA name -> (operation, the rest of its line)
    arguments: list  # the function's arguments' SSA names, in order
    aliases: dict  # `_loop_aliases`
    events: tuple
    for_loops: tuple  # the scf.for loops in program order (`_ForLoop`)
    branches: tuple  # the scf.if branches in program order (`_Branch`)


@functools.lru_cache(maxsize=8)
def _parse_ttir(ttir: str) -> _Ttir:
    defs: dict[str, tuple[str, str]] = {}
    events: list[tuple] = []
    indents: list[int] = []  # of the open regions' opening lines
    for line in ttir.splitlines():
        found = _TTIR_DEF.match(line)
        if found:
            defs[found.group(1)] = (found.group(2), found.group(3))
        indent, text = len(line) - len(line.lstrip()), line.strip()
        if text.startswith("}") and indents and indents[-1] == indent:
            if text.startswith("} else {"):
                events.append(("else",))
            else:
                indents.pop()
                events.append(("close",))
            continue
        memory, yielded = _TTIR_MEMORY.search(text), _TTIR_YIELD.match(text)
        if memory:
            events.append(("memory", memory.group(1), _tile_bytes(text)))
        if yielded:
            events.append(("yield", tuple(_TTIR_VALUE.findall(yielded.group(1)))))
        if not text.endswith("{"):
            continue
        indents.append(indent)
        loop, branch, carried = _TTIR_FOR.search(text), _TTIR_IF.search(text), _TTIR_ITER_ARGS.search(text)
        events.append(("for", loop.group(1), loop.groups()[1:],
                       tuple(_TTIR_PAIR.findall(carried.group(1))) if carried else ()) if loop
                      else ("if", branch.group(1)) if branch else ("open",))
    header = _TTIR_FUNC.search(ttir)
    arguments = _TTIR_ARG.findall(header.group(1)) if header else []
    loops, branches = _structure(events)
    return _Ttir(defs, arguments, _loop_aliases(ttir), tuple(events), tuple(loops), tuple(branches))


def _structure(events: tuple) -> tuple[list[_ForLoop], list[_Branch]]:
    """The scf.for loops and scf.if branches of `events`, in program order."""
    loops: list[_ForLoop] = []
    branches: list[_Branch] = []
    open_regions: list[tuple[str, int | None]] = []  # per open region: its kind and, for a loop or branch, its index
    for event in events:
        if event[0] == "close":
            open_regions.pop()
        elif event[0] == "else":
            branches[open_regions[-1][1]].has_else = True
        elif event[0] == "yield" and open_regions and open_regions[-1][0] == "for":
            loops[open_regions[-1][1]].yields = event[1]
        elif event[0] == "for":
            parent = next((index for kind, index in reversed(open_regions) if kind == "for"), None)
            loops.append(_ForLoop(event[1], event[2], parent, event[3]))
            open_regions.append(("for", len(loops) - 1))
        elif event[0] == "if":
            directly = bool(open_regions) and open_regions[-1][0] == "for"
            branches.append(_Branch(event[1], open_regions[-1][1] if directly else None))
            open_regions.append(("if", len(branches) - 1))
        elif event[0] == "open":
            open_regions.append(("open", None))
    return loops, branches


def _trips(loop: _ForLoop, lookup: Callable[[str], object]) -> int | None:
    lower, upper, step = (lookup(v) for v in loop.bounds)
    if not all(isinstance(v, (int, float)) for v in (lower, upper, step)) or step <= 0:
        return None
    return max(0, math.ceil((upper - lower) / step))


@dataclass(frozen=True)
class _Evaluation:
    """What `_evaluate_loops` finds for one program: per loop in program order its trips per iteration of the
    enclosing loop (None: unknown), per branch in program order the share of its executions that take it (None:
    unknown, or not directly in a loop's body)."""

    trips: list
    taken: list


def _evaluate_loops(parsed: _Ttir, values: _LoopBounds) -> _Evaluation:
    """The loops' trips and the in-loop branches' shares for `values`' program. A loop's trips are averaged over the
    iterations of the enclosing loop where its bounds depend on an enclosing loop's induction variable (the concat
    conv's window of low-resolution rows per group): the product of the averages down a nest is then the innermost
    body's count. A loop is evaluated iteration by iteration, with its induction variable and its scalar iteration
    arguments bound (each trip's from what the previous one yields), where an inner loop's bounds or the condition of
    a branch in its body need them: the aggregation adjoint's row loop stores a source row only when the output row
    moves past it (the carried row), the window attention backward masks only the windows that cross the shifted
    image's border (the carried window coordinates)."""
    loops = parsed.for_loops
    children: dict = {}
    for index, loop in enumerate(loops):
        children.setdefault(loop.parent, []).append(index)
    own: dict = {}  # loop index -> indices of the branches directly in its body
    for index, branch in enumerate(parsed.branches):
        if branch.loop is not None:
            own.setdefault(branch.loop, []).append(index)
    executions = [0] * len(loops)  # body executions per program, summed over the enclosing iterations
    known = [True] * len(loops)
    taken, evaluated = [0] * len(parsed.branches), [0] * len(parsed.branches)
    decided = [True] * len(parsed.branches)
    budget = [MAX_EVALUATED_ITERATIONS]

    def subtree(index: int) -> list[int]:
        return [index] + [d for child in children.get(index, []) for d in subtree(child)]

    def count(index: int, lookup: Callable[[str], object], repeats: int) -> None:
        """The branches directly in loop `index`'s body, run `repeats` times alike under `lookup`."""
        for b in own.get(index, []):
            condition = lookup(parsed.branches[b].condition)
            decided[b] &= condition is not None
            taken[b] += repeats * bool(condition)
            evaluated[b] += repeats

    def visit(index: int, bindings: dict, repeats: int) -> None:
        """Loop `index` run `repeats` times alike under `bindings` (enclosing induction variables and carried
        values)."""
        loop, lookup = loops[index], values.under(bindings)
        trips = _trips(loop, lookup)
        known[index] &= trips is not None
        trips = 1 if trips is None else trips  # a loop of unknown trips counts as one
        executions[index] += trips * repeats
        inner = children.get(index, [])
        lower, step = lookup(loop.bounds[0]), lookup(loop.bounds[2])
        # iterate only where an inner bound or a branch needs this loop's variables (else every iteration is alike)
        iterate = (known[index] and isinstance(lower, (int, float)) and trips <= budget[0]
                   and (any(_trips(loops[d], lookup) is None for child in inner for d in subtree(child))
                        or any(lookup(parsed.branches[b].condition) is None for b in own.get(index, []))))
        if not iterate:
            count(index, lookup, repeats * trips)
            for child in inner:
                visit(child, bindings, repeats * trips)
            return
        budget[0] -= trips
        carried = {name: lookup(initial) for name, initial in loop.carried}
        for i in range(trips):
            trip = {**bindings, **carried, loop.variable: lower + i * step}
            trip_lookup = values.under(trip)
            count(index, trip_lookup, repeats)
            for child in inner:
                visit(child, trip, repeats)
            carried = {name: trip_lookup(y) for (name, _), y in zip(loop.carried, loop.yields)}

    for index in children.get(None, []):
        visit(index, {}, 1)
    averages: list[int | float | None] = []
    for index, loop in enumerate(loops):
        outer = 1 if loop.parent is None else executions[loop.parent]
        average = executions[index] / outer if outer else 0
        averages.append(None if not known[index] else int(average) if average == int(average) else average)
    shares = [taken[b] / evaluated[b] if decided[b] and evaluated[b] else None for b in range(len(parsed.branches))]
    return _Evaluation(averages, shares)


class IrReading(NamedTuple):
    """What `read_ttir` finds for one program."""

    loops: list  # the kernel's scf.for loops, nested as in the IR, with their trips (`IrLoop`)
    traffic: dict  # bytes loaded and stored through each pointer argument, by the argument's index
    taken: dict  # condition -> (the share of its executions that take it, whether it has an else arm), of each
    # branch in a loop's body that the program's arguments alone do not decide (the rest are `decided_branches`) and
    # whose share is known


def read_ttir(ttir: str, scalars: tuple, grid: tuple, tables: tuple = (), program: tuple = (0, 0, 0)) -> IrReading:
    """The kernel's loops with their trip counts for `program` and the branches' shares (`_evaluate_loops`), and
    the bytes it moves: every tt.load/tt.store counted at its tile size, times the trips of the loops around it, times
    the share of the branches around it that take its arm (0 in an arm known not taken, 1 where unknown). The TTIR is
    parsed once for all programs (`_parse_ttir`)."""
    parsed = _parse_ttir(ttir)
    values = _LoopBounds(ttir, scalars, grid, tables, program)
    evaluation = _evaluate_loops(parsed, values)
    trips, branches = iter(evaluation.trips), iter(zip(parsed.branches, evaluation.taken))
    arguments = {name: index for index, name in enumerate(parsed.arguments)}
    top: list[IrLoop] = []
    regions: list[_Region] = []
    traffic: dict[int, float] = {}
    shares: dict[str, tuple[float, bool]] = {}
    for kind, *details in parsed.events:
        if kind == "else":
            taken = regions[-1].taken
            regions[-1].factor = 1 if taken is None else 1 - taken
        elif kind == "close":
            regions.pop()
        elif kind == "memory":
            argument = _pointer_argument(details[0], parsed.defs, parsed.aliases, arguments)
            if argument is not None:
                traffic[argument] = traffic.get(argument, 0) + details[1] * math.prod(r.factor for r in regions)
        elif kind == "for":
            loop_trips = next(trips)
            constant = all(parsed.defs.get(v, ("",))[0] == "arith.constant" for v in details[1])
            loop = IrLoop(loop_trips, constant, [])
            parent = next((r.loop for r in reversed(regions) if r.loop), None)
            (parent.children if parent else top).append(loop)
            regions.append(_Region(1 if loop_trips is None else loop_trips, loop=loop))
        elif kind == "if":
            branch, share = next(branches)
            condition = values(branch.condition)
            taken = share if condition is None else int(bool(condition))
            if condition is None and share is not None:
                shares[branch.condition] = share, branch.has_else
            regions.append(_Region(1 if taken is None else taken, taken=taken))
        elif kind != "yield":
            regions.append(_Region(1))
    return IrReading(top, {argument: round(nbytes) for argument, nbytes in traffic.items()}, shares)


def decided_branches(ttir: str, scalars: tuple, grid: tuple, tables: tuple = ()) -> dict[str, bool]:
    """The conditions of the kernel's `scf.if`s that program 0's arguments decide (a runtime switch, a test of the
    program id), by SSA name, with their values."""
    values = _LoopBounds(ttir, scalars, grid, tables)
    decided = {name: values(name) for name in set(_TTIR_IF.findall(ttir))}
    return {name: bool(value) for name, value in decided.items() if value is not None}


def program_zero_path(ttir: str, decided: dict[str, bool]) -> str:
    """The TTIR with each `scf.if` of `decided` given its condition as a constant, so that a compile of it
    (`Specialiser.compile_ttir`) holds only the code program 0 runs."""
    for name, value in decided.items():
        ttir = re.sub(rf"scf\.if {re.escape(name)}(?![\w.#])", f"scf.if %program_zero_{str(value).lower()}", ttir)
    constants = "".join(f"\n    %program_zero_{v} = arith.constant {v}" for v in ("true", "false"))
    return _TTIR_FUNC_OPEN.sub(lambda found: found.group(0) + constants, ttir, count=1)


def _loop_aliases(ttir: str) -> dict[str, str]:
    """A loop's iteration arguments and results -> their initial values (a pointer advanced in a loop keeps its
    base)."""
    aliases = {}
    for line in ttir.splitlines():
        found = _TTIR_LOOP_RESULTS.match(line)
        if not found:
            continue
        result, count, pairs = found.groups()
        inits = _TTIR_PAIR.findall(pairs)
        aliases.update(inits)
        names = [f"{result}#{i}" for i in range(int(count))] if count else [result]
        aliases.update(zip(names, (init for _, init in inits)))
    return aliases


def _pointer_argument(name: str, defs: dict, aliases: dict, arguments: dict) -> int | None:
    """The kernel argument a pointer (tile) is computed from, through offsets, splats, broadcasts and loops."""
    seen = set()
    while name not in arguments:
        if name in seen:
            return None
        seen.add(name)
        if name in aliases:
            name = aliases[name]
            continue
        op, rest = defs.get(name, ("", ""))
        operands = _TTIR_VALUE.findall(rest)
        if op in _POINTER_OPS and operands:
            name = operands[0]
        elif op == "arith.select" and len(operands) >= 2:
            name = operands[1]
        else:
            return None
    return arguments[name]


def _tile_bytes(text: str) -> int:
    """Bytes of one tt.load/tt.store: its pointer tile's elements times the element size."""
    found = _TTIR_POINTER_TYPE.search(text.split(" : ")[-1])
    if not found:
        return 0
    shape, element = found.groups()
    return math.prod(int(d) for d in shape.split("x")) * _ELEMENT_BYTES.get(element, 4) if shape else \
        _ELEMENT_BYTES.get(element, 4)


def assign_trips(sass: list[Loop], ir: list[IrLoop]) -> bool:
    """Gives the SASS loops the trip counts of the TTIR loops they come from, level by level in program order. The
    TTIR level may first need rewriting as the backend compiles it: loops with constant bounds dropped (unrolled),
    loops of at most one trip flattened (a branch; their inner loops move up), or both. The first rewriting whose
    whole nest fits the SASS wins, else the first that fits this level; False where the nests disagree somewhere
    (SASS loops without a counterpart keep trips None)."""
    candidates = [level for level in _rewritings(ir) if len(level) == len(sass)]
    if not candidates:
        return False
    chosen = next((level for level in candidates if _fits(sass, level)), candidates[0])
    matched = True
    for loop, source in zip(sass, chosen):
        loop.trips = source.trips
        matched &= assign_trips(loop.children, source.children)
    return matched


def _fits(sass: list[Loop], ir: list[IrLoop]) -> bool:
    return len(sass) == len(ir) and all(
        any(_fits(loop.children, level) for level in _rewritings(source.children))
        for loop, source in zip(sass, ir))


def _rewritings(ir: list[IrLoop]) -> tuple:
    return ir, _unrolled(ir), _flattened(ir), _flattened(_unrolled(ir))


def _unrolled(ir: list[IrLoop]) -> list[IrLoop]:
    return [loop for loop in ir if not loop.constant]


def _flattened(ir: list[IrLoop]) -> list[IrLoop]:
    level = []
    for loop in ir:
        if loop.trips is not None and loop.trips <= 1:
            level += _flattened(loop.children)
        else:
            level.append(loop)
    return level


# ---------------------------------------------------------------------------------------------------------------------
# One compiled kernel, and one launch of it
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelCode:
    """What one compile produced, as the analysis needs it."""

    name: str
    resources: dict  # registers, stack_bytes, static_shared_bytes, local_bytes
    dynamic_shared_bytes: int  # what the launcher requests (Triton's metadata.shared)
    listing: tuple  # Instruction
    ttir: str


def kernel_code(compiled) -> KernelCode:
    cubin = compiled.asm["cubin"]
    return KernelCode(compiled.metadata.name, resources(cubin), compiled.metadata.shared, tuple(instructions(cubin)),
                      compiled.asm["ttir"])


def static_counts(code: KernelCode) -> dict:
    """The kernel's SASS counted once per instruction: the record's compile-time fields."""
    listing = code.listing
    loads = [ins for ins in listing if ins.opcode == "LDG"]
    stored, loaded = spill_bytes(listing)
    return dict(
        registers=code.resources["registers"],
        spill_bytes=stored,
        spill_load_bytes=loaded,
        stack_bytes=code.resources["stack_bytes"],
        shared_bytes=code.dynamic_shared_bytes + code.resources["static_shared_bytes"],
        tensor_core_ops=sum(ins.opcode in TENSOR_CORE_OPCODES for ins in listing),
        async_copies=sum(ins.opcode in ASYNC_COPY_OPCODES for ins in listing),
        vector_loads=sum(width_bytes(ins) >= 8 for ins in loads),
        scalar_loads=sum(width_bytes(ins) < 8 for ins in loads),
        mufu=sum(ins.opcode == "MUFU" for ins in listing),
        sass_instructions=len(listing),
    )


def _span_size(listing, loop: Loop) -> int:
    return sum(loop.start <= ins.address <= loop.end for ins in listing)


def _weights(listing, loops: list[Loop]) -> list[int]:
    """Per instruction, the product of the trip counts of the loops around it (an unknown count as 1)."""
    weights = [1] * len(listing)

    def apply(loop: Loop) -> None:
        trips = 1 if loop.trips is None else loop.trips
        for i, ins in enumerate(listing):
            if loop.start <= ins.address <= loop.end:
                weights[i] *= trips
        for child in loop.children:
            apply(child)

    for loop in loops:
        apply(loop)
    return weights


def _unknown_trips(loops: list[Loop]) -> int:
    """How many loops of a nest have no trip count (each counted as one iteration)."""
    return sum((loop.trips is None) + _unknown_trips(loop.children) for loop in loops)


# Programs of a launch whose loop trips are evaluated (`sampled_programs`): a program's loops may depend on where it
# lies (the concat conv's upsampling windows are clamped at the image border, where program 0 lies) or on how much of
# the work is left to it (the window attention backward's last programs hold fewer windows or none).
SAMPLED_PROGRAMS = 16
_GOLDEN = (5**0.5 - 1) / 2


def sampled_programs(grid: tuple) -> tuple[tuple[int, int, int], ...]:
    """Program 0 and up to SAMPLED_PROGRAMS - 1 others, as (x, y, z) ids: linear indices (x fastest) spread over the
    grid by the golden-ratio sequence, which no regular stride of a launch's tiling aliases (16 evenly spaced samples
    of the aggregation's 10,800 programs, 675 apart, would land on 2 of its 150 pixel tiles)."""
    total = math.prod(grid)
    linear = sorted({0, *(int(k * _GOLDEN % 1.0 * total) for k in range(1, SAMPLED_PROGRAMS))})
    return tuple((i % grid[0], i // grid[0] % grid[1], i // (grid[0] * grid[1])) for i in linear)


def _program_counts(code: KernelCode, spec: Specialisation, program: tuple) -> dict:
    """One program's SASS weighted by its loop trips, per warp, and its bytes per pointer argument."""
    listing = code.listing
    loops = sass_loops(list(listing))
    ir_loops, traffic, taken = read_ttir(code.ttir, spec.scalars, spec.grid, spec.tables, program)
    matched = assign_trips(loops, ir_loops)
    weights = _weights(listing, loops)
    tensor_flops: dict[str, float] = {}
    for ins, weight in zip(listing, weights):
        kind, flops = mma_flops(ins) if ins.opcode in TENSOR_CORE_OPCODES else ("", 0)
        if flops:
            tensor_flops[kind] = tensor_flops.get(kind, 0) + flops * weight
    memory = ("LDG", "STG", "LDGSTS")
    return dict(
        loops=loops, matched=matched, traffic=traffic, taken=taken, tensor_flops=tensor_flops,
        issued_instructions=sum(weights),
        requested_bytes=32 * sum(width_bytes(ins) * w for ins, w in zip(listing, weights) if ins.opcode in memory),
        mufu_ops=sum(w for ins, w in zip(listing, weights) if ins.opcode == "MUFU"),
    )


_PER_PROGRAM = ("issued_instructions", "requested_bytes", "mufu_ops")


def _with_branch_shares(counts: dict, fixed: Callable[[str, bool], dict]) -> dict:
    """One program's counts with each arm of the branches of `counts["taken"]` weighted by its share: the SASS counts
    both arms as run on each trip of the loops around them; the kernel compiled with the branch's condition constant
    (`fixed`: its counts for this program) tells what the other arm adds, of which only its share is run. Each arm
    is measured against the kernel's full count, and never counts as less than nothing (the compiler may lay out the
    two compiles' common code differently)."""
    weighted = dict(counts, tensor_flops=dict(counts["tensor_flops"]))
    for condition, (share, has_else) in counts["taken"].items():
        arms = [(False, share)] + ([(True, 1 - share)] if has_else else [])
        for value, runs in arms:  # the condition's constant, the share of trips that run the arm it drops
            if runs >= 1:
                continue
            without = fixed(condition, value)
            weighted["matched"] &= without["matched"]
            for name in _PER_PROGRAM:
                weighted[name] -= (1 - runs) * max(0, counts[name] - without[name])
            for kind, flops in counts["tensor_flops"].items():
                weighted["tensor_flops"][kind] -= (1 - runs) * max(0, flops - without["tensor_flops"].get(kind, 0))
    return weighted


def dynamic_counts(code: KernelCode, spec: Specialisation,
                   fixing: Callable[[str, bool], KernelCode] | None = None) -> dict:
    """Launch-wide estimates (all programs, each the mean of the sampled programs): the SASS weighted by loop trips for
    this launch's arguments, and by the shares of trips that take each arm of the branches in loop bodies, where
    `fixing` ((condition, value) -> the kernel compiled with that branch's condition constant) is given
    (`_with_branch_shares`); the heaviest sampled program's own figures (`heaviest_program`: a launch whose programs'
    work is uneven takes at least its time); the main loop's static size and trips, the mean of the sampled programs'
    (program 0's top-level loop issuing the most: static size times trips); `branch_shares`: per branch in a loop's
    body that some sampled program does not always take, in program order, the mean share that takes it (over the
    programs where it is known)."""
    listing = code.listing
    samples = [_program_counts(code, spec, program) for program in sampled_programs(spec.grid)]
    if fixing is not None:
        fixed = functools.cache(lambda condition, value, program: _program_counts(fixing(condition, value), spec,
                                                                                   program))
        samples = [_with_branch_shares(c, functools.partial(fixed, program=program))
                   for c, program in zip(samples, sampled_programs(spec.grid))]
    first = samples[0]
    programs = math.prod(spec.grid)
    warps = programs * spec.options.num_warps

    def mean(values) -> float:
        return sum(values) / len(samples)

    kinds = sorted({kind for c in samples for kind in c["tensor_flops"]})

    heaviest = max(samples, key=lambda c: c["issued_instructions"])
    per_program = spec.options.num_warps
    traffic = {argument: mean(c["traffic"].get(argument, 0) for c in samples)
               for argument in {a for c in samples for a in c["traffic"]}}
    main = max(range(len(first["loops"])), default=None,
               key=lambda i: _span_size(listing, first["loops"][i]) * (first["loops"][i].trips or 1))
    main_trips = [] if main is None else [c["loops"][main].trips for c in samples]  # one listing: the same nests
    partial = list(dict.fromkeys(condition for c in samples for condition, (share, _) in c["taken"].items()
                                 if share < 1))
    shares = [[c["taken"][condition][0] for c in samples if condition in c["taken"]] for condition in partial]
    return dict(
        loop_instructions=0 if main is None else _span_size(listing, first["loops"][main]),
        loop_trips=None if main is None or None in main_trips else round(mean(main_trips), 2),
        trips_matched=all(c["matched"] for c in samples),
        unknown_trip_loops=max(_unknown_trips(c["loops"]) for c in samples),
        **{name: round(mean(c[name] for c in samples) * warps) for name in _PER_PROGRAM},
        tensor_flops={kind: round(mean(c["tensor_flops"].get(kind, 0) for c in samples) * warps) for kind in kinds},
        heaviest_program=dict(
            **{name: round(heaviest[name] * per_program) for name in _PER_PROGRAM},
            tensor_flops={kind: round(flops * per_program) for kind, flops in sorted(heaviest["tensor_flops"].items())},
        ),
        dram_bytes=round(dram_bytes(traffic, spec.tensors, programs)),
        branch_shares=[round(sum(share) / len(share), 3) for share in shares],
    )


def dram_bytes(traffic: dict, tensors: tuple, programs: int) -> int:
    """Bytes the launch moves to or from memory, at least once each: per tensor (arguments sharing a pointer are
    one), the bytes all programs load and store through it (the sampled programs' mean times the programs), at most
    its extent.
    Re-reads within the extent are L2 traffic; a tensor reached through another argument's pointer and an offset
    table (the concat conv's inputs beyond the first of a group) is counted within that argument's extent."""
    requested: dict[int, int] = {}
    extents: dict[int, int] = {}
    for index, tensor in enumerate(tensors):
        if tensor is not None and index in traffic:
            pointer, extent = tensor
            requested[pointer] = requested.get(pointer, 0) + traffic[index] * programs
            extents[pointer] = extent
    return sum(min(requested[pointer], extents[pointer]) for pointer in requested)
