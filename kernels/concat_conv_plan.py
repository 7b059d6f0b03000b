"""Host-side plan of `kernels.concat_conv1x1` (kernels/concat_conv.py): the resolution groups, the virtual rows, the
tiles of every launch and the tables the kernels read, built once per call signature and cached.

A call signature is what the plan depends on: every unique input's shape, strides and dtype, the order of the
segments (which unique tensor each reads), the output channels and size, the device and the float32 matmul mode.
Nothing in a plan depends on an address: a launch receives the (at most MAX_GROUP_TENSORS) distinct tensors of a
resolution group through scalar arguments, and a table row names the slot of its tensor among them. The tables are
uploaded to the device once, when the plan is built (the first call of a signature), so that later calls do no
host-to-device copy and can be captured in a CUDA graph (warm the op up once before capturing, as every Triton kernel
needs for its compile).

Virtual rows. The segments of one resolution are rows [row0, row0 + num_rows) of a group, every group starting at a
multiple of its launches' BLOCK_K and padded to one (the padding rows are never loaded: their weight columns are zero
and their inputs masked), so that the weight tile of every K step is a full, unmasked tile that the compiler turns
into asynchronous copies. A row of the table holds

    packed          (channel c's element offset c * stride_c) << SLOT_BITS | slot, the slot naming which of the
                    group's tensors the row reads
    y, x strides    (read for pixel grids that are not contiguous only)

one int32 per row and field where every value fits (else int64), so that the K loop's table loads cost little beside
its tiles. The offset is in units of ALIGN_ELEMENTS when every row of the group allows it (the kernel multiplies it
back; the compiler, which specialises the unit argument when it is 16, then knows the rows are 16-element aligned and
vectorises). A launch reads its group's tensors from the first one's pointer: the others' element offsets from it
(`deltas`, address differences, the only per-call values) and every tensor's batch stride are scalar arguments, and a
group whose deltas are not multiples of the unit takes the table in elements instead (both are uploaded).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._launch import JIT_DIVISIBILITY, ceil_div, next_power_of_2

# Distinct tensors one launch reads or writes (its base pointer and the others' deltas from it, `launch_rows`):
# SCA-MTL's aggregation has at most four per resolution (F1 and its three cross-attention maps). A call with more at
# one resolution is first concatenated (`overflowing_resolutions`).
MAX_GROUP_TENSORS = 4
ALIGN_ELEMENTS = JIT_DIVISIBILITY
ROW_FIELDS = 3  # per virtual row: channel offset and slot, packed (SLOT_BITS); y stride; x stride
SLOT_BITS = 2  # the slot in a row's low bits (MAX_GROUP_TENSORS = 4 slots)
NO_SLOTS = (0,) * (2 * MAX_GROUP_TENSORS - 1)  # a launch without rows: its deltas and batch strides
ROW_TABLE_SUFFIX = {True: "@aligned", False: "@elements"}
PLAN_CACHE_SIZE = 64

# Forward tiles. The full-resolution launch that adds the upsampled low-resolution products in its epilogue tiles the
# image in EPILOGUE_TILE_W-wide blocks of rows, so that a tile reads a small window of each Y_g (concat_conv.py); the
# other launches tile flat pixels. Where the loads vectorise (16-element aligned rows), 128 x 128 tiles on 16 warps
# (105-125 registers: one CTA of 16 warps per SM; on 8 warps they took 227-239); where they do not (every load scalar,
# each with its own address), 64 x 64 on 8 warps, which the compiler fits in 128 registers. IEEE fp32 products hold
# their operands in registers: half the tiles, on 8 warps. A small output-channel count (the classifiers' 1-40) takes
# a matching BLOCK_M on SMALL_M_WARPS: such tiles are light (40-101 registers at 128 pixels), several CTAs share an
# SM, and a launch that streams its input once ends in a less empty last wave. The model's classifiers (1,200 tiles)
# run 1.8 waves where the compile fits 5 CTAs per SM (1 and 3 channels on triton 3.8, 1 on 3.6, 3 on 3.9; the other
# gets 4 or 6: 2.3 or 1.5 waves) and 4.5 waves of 2 CTAs at 40 channels; 256-pixel tiles on 16 warps ran 2.3 waves of
# 2 CTAs, the last a quarter full (predicted 149 -> 124 us where 5 CTAs fit, the same elsewhere). (Registers measured
# in the ahead-of-time compile on triton 3.8, sm_90.)
FWD_BLOCK_M = {True: 128, False: 64}  # vectorised loads or not
FWD_BLOCK_N = {True: 128, False: 64}
FWD_WARPS = {True: 16, False: 8}
FWD_BLOCK_K = 32
FWD_STAGES = 3
SMALL_M_BLOCK_N = {True: 128, False: 64}
SMALL_M_WARPS = 8
MIN_BLOCK_M = 16  # the tensor cores' smallest tile
EPILOGUE_TILE_W = 32
# Backward GEMM tiles: d x is input rows x pixels x output channels (K), d W output channels x input rows x pixels
# (K). Where the loads vectorise, long tiles on 16 warps (d x: 128 rows x 256 pixels of 16-bit data, re-reading the
# weight half as often as 128-pixel tiles; d W: 64 pixels per step of 16-bit operands, halving the loop's overhead,
# 32 of fp32 ones, whose rounding to TF32 (kernels/_triton.py's `dot`) would otherwise spill); elsewhere, and for
# IEEE fp32 products (operands in registers), 64 x 64 tiles on 8 warps, which the compiler fits without spilling when
# every load is scalar. d W's tiles follow the wider of its operands (an fp32 D_g of fp16 inputs: 4 bytes).
BWD_TILES = {
    ("dx", 2): (128, 256, 32, 16),  # (kind, element bytes): BLOCK_M, BLOCK_N, BLOCK_K, warps
    ("dx", 4): (128, 128, 32, 16),
    ("dw", 2): (128, 128, 64, 16),
    ("dw", 4): (128, 128, 32, 16),
    "scalar": (64, 64, 32, 8),
}
BWD_STAGES = 3


# The adjoint of the upsampling (concat_conv.py) serves up to MAX_ADJOINT_GROUPS low-resolution groups per launch from
# one pass over dZ: a program owns ADJOINT_BLOCK_J source columns (at most) of each, about ADJOINT_OUT_COLUMNS output
# columns' worth for every group alike.
MAX_ADJOINT_GROUPS = 3
ADJOINT_FIELDS = 4  # per group of a launch: offset of its D_g block, h_g, w_g, source columns per program
ADJOINT_BLOCK_J = 16
ADJOINT_OUT_COLUMNS = 32


@dataclass(frozen=True)
class Tiles:
    """One launch's tile sizes and launch options. tile_w = 0: flat pixel tiles; else BLOCK_N // tile_w rows of
    tile_w columns."""

    block_m: int
    block_n: int
    block_k: int
    tile_w: int
    warps: int
    stages: int

    def gemm_constexprs(self) -> dict:
        return dict(BLOCK_M=self.block_m, BLOCK_N=self.block_n, BLOCK_K=self.block_k)

    def constexprs(self) -> dict:
        return dict(self.gemm_constexprs(), TILE_W=self.tile_w)

    def pixel_tiles(self, height: int, width: int) -> int:
        if not self.tile_w:
            return ceil_div(height * width, self.block_n)
        return ceil_div(height, self.block_n // self.tile_w) * ceil_div(width, self.tile_w)


@functools.cache
def forward_tiles(out_channels: int, precision: str, epilogue_up: bool, vectorised: bool) -> Tiles:
    """The tiles of a forward launch: `epilogue_up` for the full-resolution launch that upsamples Y_g, `vectorised`
    where its rows are 16-element aligned (`vectorised_launch`)."""
    ieee = precision == "ieee"
    block_m = FWD_BLOCK_M[vectorised] // (2 if ieee else 1)
    block_n = FWD_BLOCK_N[vectorised]
    warps = FWD_WARPS[vectorised and not ieee]
    if out_channels <= block_m // 2 and not epilogue_up:
        block_m = max(MIN_BLOCK_M, next_power_of_2(out_channels))
        block_n, warps = SMALL_M_BLOCK_N[vectorised], SMALL_M_WARPS
    if ieee:
        block_n //= 2
    return Tiles(block_m, block_n, FWD_BLOCK_K, EPILOGUE_TILE_W if epilogue_up else 0, warps, FWD_STAGES)


@functools.cache
def backward_tiles(kind: str, element_size: int, precision: str, vectorised: bool) -> Tiles:
    """The tiles of a d x (`kind` "dx", `element_size`: the inputs') or d W ("dw", the wider operand's) launch."""
    tensor_cores = precision != "ieee"
    block_m, block_n, block_k, warps = BWD_TILES[(kind, element_size) if vectorised and tensor_cores else "scalar"]
    return Tiles(block_m, block_n, block_k, 0, warps, BWD_STAGES)


@dataclass(frozen=True)
class Group:
    """The rows of one resolution: [row0, row0 + num_rows), padded to row0 + padded_rows."""

    height: int
    width: int
    members: tuple  # the layout's tensors (segments or unique inputs) in this group, in row order
    tensors: tuple  # the distinct unique inputs they read, in slot order
    row0: int
    num_rows: int
    padded_rows: int
    full: bool  # at the output resolution (no upsampling)
    up_offset: int  # low-resolution groups: element offset of its (B, M, h, w) block in the Y / D buffer
    pixel_contig: bool  # every tensor of the group has x stride 1 and y stride = width
    unit: int  # ALIGN_ELEMENTS or 1: the unit of the table's offsets and batch strides
    grad_unit: int  # the same for the gradients (contiguous tensors of the inputs' shapes)

    @property
    def pixels(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class Layout:
    """Virtual rows of a list of tensors grouped by resolution (the full-resolution group first, then by first
    appearance)."""

    groups: tuple
    first_rows: tuple  # member -> its first virtual row
    rows: int  # R, padded
    up_elements: int  # size of the buffer of the low-resolution groups' (B, M, h, w) blocks

    @property
    def low_groups(self) -> list:
        return [g for g in self.groups if not g.full]

    @property
    def full_group(self) -> Group | None:
        return next((g for g in self.groups if g.full), None)


@dataclass(frozen=True)
class Signature:
    """What a plan depends on (hashable): per unique input (shape, strides, dtype), the segments' unique indices,
    the output channels and size, the device and the product precision."""

    inputs: tuple
    occurrence: tuple
    out_channels: int
    out_size: tuple
    device: torch.device
    precision: str

    @staticmethod
    def of(uniques: Sequence[torch.Tensor], occurrence: Sequence[int], out_channels: int, out_size: Sequence[int],
           precision: str) -> Signature:
        return Signature(tuple((tuple(u.shape), u.stride(), u.dtype) for u in uniques), tuple(occurrence),
                         out_channels, tuple(out_size), uniques[0].device, precision)

    @property
    def batch(self) -> int:
        return self.inputs[0][0][0]


@dataclass(frozen=True)
class Plan:
    """Shapes, tiles and device tables of one signature. The forward multiplies every segment by its own weight
    columns (as the reference); the backward works on the unique inputs, whose d x is the product with their merged
    columns and whose d W is computed once for all their segments (see concat_conv.py)."""

    signature: Signature
    segments: Layout  # forward rows
    uniques: Layout  # backward rows
    weight_rows: int  # M padded to the largest forward BLOCK_M (rows of the row-order weight; the padding is zero)
    adjoint_launches: tuple  # per launch of the adjoint: (its number of groups, its programs along the columns)
    max_repeats: int  # the most segments one unique input fills
    tables: dict  # name -> device tensor, int64 or (row tables) int32 (see `_tables`)

    @property
    def batch(self) -> int:
        return self.signature.batch

    @property
    def out_channels(self) -> int:
        return self.signature.out_channels

    @property
    def out_size(self) -> tuple:
        return self.signature.out_size

    @property
    def occurrence(self) -> tuple:
        return self.signature.occurrence

    def rowless(self) -> Group:
        """A full-resolution group without rows: the forward epilogue and d bias when no input is at full size."""
        return Group(*self.out_size, (), (), 0, 0, 0, True, 0, True, 1, 1)


def overflowing_resolutions(uniques: Sequence[torch.Tensor]) -> list:
    """The resolutions at which the distinct tensors `uniques` are more than one launch takes (MAX_GROUP_TENSORS)."""
    counts: dict = {}
    for x in uniques:
        if x.shape[1]:
            counts[tuple(x.shape[2:])] = counts.get(tuple(x.shape[2:]), 0) + 1
    return [hw for hw, count in counts.items() if count > MAX_GROUP_TENSORS]


def _pixel_contig(shape: tuple, stride: tuple) -> bool:
    h, w = shape[2:]
    return (w <= 1 or stride[3] == 1) and (h <= 1 or stride[2] == w)


def _contiguous_strides(shape: tuple) -> tuple:
    """The strides of a contiguous tensor of `shape` (the gradients the backward allocates)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _unit(strides: Sequence[tuple]) -> int:
    """ALIGN_ELEMENTS if every tensor's batch and channel strides are multiples of it, else 1."""
    return ALIGN_ELEMENTS if all(s[0] % ALIGN_ELEMENTS == 0 and s[1] % ALIGN_ELEMENTS == 0 for s in strides) else 1


def _layout(members: Sequence[int], inputs: tuple, out_size: tuple, out_channels: int, block_k: int) -> Layout:
    """Rows of `members` (unique indices: member i reads unique input members[i]) grouped by resolution, each group
    starting at a multiple of block_k and padded to one. `inputs`: the signature's (shape, strides, dtype) per unique
    input."""
    shape_of = [inputs[u][0] for u in members]
    resolutions = list(dict.fromkeys([out_size] + [s[2:] for s in shape_of]))
    batch = inputs[0][0][0]
    groups, first_rows, row, up_elements = [], [0] * len(members), 0, 0
    for hw in resolutions:
        in_group = tuple(i for i, s in enumerate(shape_of) if s[2:] == hw and s[1])
        if not in_group:  # tensors without channels contribute nothing
            continue
        row0 = row
        for i in in_group:
            first_rows[i] = row
            row += shape_of[i][1]
        tensors = tuple(dict.fromkeys(members[i] for i in in_group))
        full = hw == out_size
        groups.append(Group(
            height=hw[0], width=hw[1], members=in_group, tensors=tensors, row0=row0, num_rows=row - row0,
            padded_rows=ceil_div(row - row0, block_k) * block_k, full=full, up_offset=0 if full else up_elements,
            pixel_contig=all(_pixel_contig(*inputs[u][:2]) for u in tensors),
            unit=_unit([inputs[u][1] for u in tensors]),
            grad_unit=_unit([_contiguous_strides(inputs[u][0]) for u in tensors]),
        ))
        row = row0 + groups[-1].padded_rows
        if not full:
            up_elements += batch * out_channels * hw[0] * hw[1]
    return Layout(tuple(groups), tuple(first_rows), row, up_elements)


def _row_table(layout: Layout, members: Sequence[int], inputs: tuple, gradients: bool, aligned: bool) -> list:
    """Flat (ROW_FIELDS, R) values: per virtual row (its channel offset << SLOT_BITS) | its slot, the offset in its
    group's unit where `aligned`, else in elements; its y and x strides. For the inputs (`inputs[u]` = (shape,
    strides, dtype) of unique input u) or their gradients (contiguous). Padding rows are all zero."""
    table = [[0] * layout.rows for _ in range(ROW_FIELDS)]
    for group in layout.groups:
        unit = (group.grad_unit if gradients else group.unit) if aligned else 1
        for i in group.members:
            shape, stride = inputs[members[i]][:2]
            stride = _contiguous_strides(shape) if gradients else stride
            slot, row = group.tensors.index(members[i]), layout.first_rows[i]
            for c in range(shape[1]):
                values = ((c * stride[1] // unit) << SLOT_BITS | slot, stride[2], stride[3])
                for field, value in enumerate(values):
                    table[field][row + c] = value
    return [v for column in table for v in column]


def segment_columns(channels: Sequence[int]) -> list:
    """The first weight column of every segment."""
    columns, column = [], 0
    for c in channels:
        columns.append(column)
        column += c
    return columns


def _adjoint_launches(layout: Layout, width: int) -> list:
    """Per launch of the adjoint: its low-resolution groups (up to MAX_ADJOINT_GROUPS), its programs along the output
    columns, and each group's source columns per program (about ADJOINT_OUT_COLUMNS output columns' worth)."""
    low = layout.low_groups
    launches = []
    for start in range(0, len(low), MAX_ADJOINT_GROUPS):
        groups = low[start:start + MAX_ADJOINT_GROUPS]
        programs = max([ceil_div(width, ADJOINT_OUT_COLUMNS)]
                       + [ceil_div(g.width, ADJOINT_BLOCK_J) for g in groups])
        launches.append((groups, programs, [ceil_div(g.width, programs) for g in groups]))
    return launches


def _adjoint_table(launches: list) -> list:
    """(launch, ADJOINT_FIELDS, MAX_ADJOINT_GROUPS) values: per group its D_g block's offset, h_g, w_g, columns per
    program (unused groups repeat the first, which the kernel masks out)."""
    values = []
    for groups, _, cols in launches:
        fields = [[g.up_offset for g in groups], [g.height for g in groups], [g.width for g in groups], cols]
        values += [v for field in fields for v in field + field[:1] * (MAX_ADJOINT_GROUPS - len(groups))]
    return values


def _tables(sig: Signature, channels: tuple, segments: Layout, uniques: Layout, max_repeats: int) -> dict:
    """The tables, uploaded once (int64):
        fwd_cols    (R_s,): the weight column of every forward row (-1 in padding)
        ups         (3, low groups): offset of Y_g's block, h_g, w_g
        bwd_cols    (max_repeats, R_u): the weight columns summed into every backward row (-1 where none)
        column_map  (Cin + 1,): the backward row of every weight column, then R_u (the d bias column of the partials)
        adjoint     (launches, ADJOINT_FIELDS, MAX_ADJOINT_GROUPS): the adjoint's groups (`_adjoint_table`)
    and the row tables (ROW_FIELDS, R) in each group's unit (suffix "@aligned") and in elements ("@elements"):
        fwd_rows    the forward rows (segments)
        bwd_rows    the backward rows (unique inputs)
        dx_rows     the rows of the gradients (contiguous tensors of the inputs' shapes)
    int32 where every row value fits, else int64."""
    unique_members = tuple(range(len(sig.inputs)))
    fwd_cols = [-1] * segments.rows
    bwd_cols = [[-1] * uniques.rows for _ in range(max_repeats)]
    column_map, seen = [], [0] * len(sig.inputs)
    for i, (u, column) in enumerate(zip(sig.occurrence, segment_columns(channels))):
        for c in range(channels[i]):
            fwd_cols[segments.first_rows[i] + c] = column + c
            bwd_cols[seen[u]][uniques.first_rows[u] + c] = column + c
            column_map.append(uniques.first_rows[u] + c)
        seen[u] += 1
    low = segments.low_groups
    parts = dict(
        fwd_cols=fwd_cols,
        ups=[g.up_offset for g in low] + [g.height for g in low] + [g.width for g in low],
        bwd_cols=[v for repeat in bwd_cols for v in repeat],
        column_map=column_map + [uniques.rows],
        adjoint=_adjoint_table(_adjoint_launches(uniques, sig.out_size[1])),
    )
    rows = {}
    for aligned in (True, False):
        suffix = ROW_TABLE_SUFFIX[aligned]
        rows["fwd_rows" + suffix] = _row_table(segments, sig.occurrence, sig.inputs, False, aligned)
        rows["bwd_rows" + suffix] = _row_table(uniques, unique_members, sig.inputs, False, aligned)
        rows["dx_rows" + suffix] = _row_table(uniques, unique_members, sig.inputs, True, aligned)
    rows["rowless"] = [0]  # the row table of a launch without rows (never read)
    narrow = all(-2**31 <= v < 2**31 for part in rows.values() for v in part)
    return {**_upload(parts, torch.int64, sig.device), **_upload(rows, torch.int32 if narrow else torch.int64,
                                                                  sig.device)}


def _upload(parts: dict, dtype: torch.dtype, device: torch.device) -> dict:
    """The parts as views of one buffer of `dtype` on `device` (one copy), each view 16-byte aligned."""
    align = 16 // torch.empty((), dtype=dtype).element_size()
    padded = {name: part + [0] * (-len(part) % align) for name, part in parts.items()}
    flat = torch.tensor([v for part in padded.values() for v in part], dtype=dtype, device=device)
    views, start = {}, 0
    for name, part in padded.items():
        views[name] = flat[start:start + len(parts[name])]
        start += len(part)
    return views


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def make_plan(sig: Signature) -> Plan:
    """The plan of a signature (cached: the tables are built and uploaded once per signature)."""
    m = sig.out_channels
    channels = tuple(sig.inputs[u][0][1] for u in sig.occurrence)
    segments = _layout(sig.occurrence, sig.inputs, sig.out_size, m, FWD_BLOCK_K)
    uniques = _layout(tuple(range(len(sig.inputs))), sig.inputs, sig.out_size, m, ALIGN_ELEMENTS)
    max_repeats = max(sig.occurrence.count(u) for u in range(len(sig.inputs)))
    weight_rows = ceil_div(m, FWD_BLOCK_M[True]) * FWD_BLOCK_M[True]  # every forward BLOCK_M divides it
    adjoint = tuple((len(groups), programs) for groups, programs, _ in _adjoint_launches(uniques, sig.out_size[1]))
    return Plan(
        signature=sig, segments=segments, uniques=uniques, weight_rows=weight_rows,
        adjoint_launches=adjoint, max_repeats=max_repeats,
        tables=_tables(sig, channels, segments, uniques, max_repeats),
    )


def launch_rows(plan: Plan, table: str, group: Group, tensors: Sequence[torch.Tensor], gradients: bool = False):
    """(base tensor, slot arguments, unit, row table) of a launch over `group`'s rows of `tensors` (indexed by unique
    input). The base is its slot-0 tensor; the slot arguments are the other slots' element offsets from it (3 deltas,
    0 for unused slots) and every slot's batch stride (4), in the unit; the aligned table where every delta is a
    multiple of the group's unit (the strides are by construction)."""
    base = tensors[group.tensors[0]]
    size = base.element_size()
    deltas = [(tensors[u].data_ptr() - base.data_ptr()) // size for u in group.tensors[1:]]
    unit = group.grad_unit if gradients else group.unit
    aligned = all(d % unit == 0 for d in deltas)
    unit = unit if aligned else 1
    unused = MAX_GROUP_TENSORS - len(group.tensors)
    batch = [tensors[u].stride(0) // unit for u in group.tensors] + [0] * unused
    slots = (*(d // unit for d in deltas), *(0,) * unused, *batch)
    return base, slots, unit, plan.tables[table + ROW_TABLE_SUFFIX[aligned]]


def vectorised_launch(group: Group, base: torch.Tensor, unit: int, tiles_2d: bool = False) -> bool:
    """Whether a launch's row loads and stores vectorise: 16-element rows (unit) from a 16-byte aligned base,
    contiguous pixels, a pixel count (the channel stride of the output, dZ and D_g) and, for 2-D tiles, a width that
    are multiples of 16."""
    aligned = group.pixels % ALIGN_ELEMENTS == 0 and (not tiles_2d or group.width % ALIGN_ELEMENTS == 0)
    if not group.num_rows:
        return aligned
    return aligned and unit == ALIGN_ELEMENTS and group.pixel_contig and base.data_ptr() % 16 == 0
