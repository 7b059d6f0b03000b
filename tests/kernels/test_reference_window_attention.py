"""window_attention_ref against explicit per-window loops in float64, and against timm's Swin block."""

import pytest
import torch

from kernels.reference import window_attention_ref
from kernels.reference.window_attention import SHIFT_MASK_VALUE
from tests._utils import FLOAT64_TOL, assert_close, grads


def _band(i: int, n: int, window: int, shift: int) -> int:
    """Swin's region slices of a rolled, padded axis of length n: [0, n-w), [n-w, n-s), [n-s, n)."""
    return 0 if i < n - window else (1 if i < n - shift else 2)


def windowed_attention_loops(qkv, rel_bias, qkv_pad, num_heads, window, shift, scale):
    """Token by token: which original token sits at each position of the rolled, padded map, then attention
    inside every window, head by head."""
    batch, height, width, three_c = qkv.shape
    channels = three_c // 3
    head_dim = channels // num_heads
    padded_h = -(-height // window) * window
    padded_w = -(-width // window) * window
    pad = qkv_pad if qkv_pad is not None else qkv.new_zeros(three_c)
    outputs = {}
    for b in range(batch):
        for top in range(0, padded_h, window):
            for left in range(0, padded_w, window):
                rolled = [(top + dy, left + dx) for dy in range(window) for dx in range(window)]
                source = [((i + shift) % padded_h, (j + shift) % padded_w) for i, j in rolled]
                tokens = torch.stack([qkv[b, y, x] if y < height and x < width else pad for y, x in source])
                region = torch.tensor(
                    [_band(i, padded_h, window, shift) * 3 + _band(j, padded_w, window, shift) for i, j in rolled]
                )
                mask = torch.zeros(len(rolled), len(rolled), dtype=qkv.dtype)
                if shift:
                    mask[region[:, None] != region[None, :]] = SHIFT_MASK_VALUE
                heads = []
                for h in range(num_heads):
                    q = tokens[:, h * head_dim : (h + 1) * head_dim]
                    k = tokens[:, channels + h * head_dim : channels + (h + 1) * head_dim]
                    v = tokens[:, 2 * channels + h * head_dim : 2 * channels + (h + 1) * head_dim]
                    logits = (q @ k.T) * scale + rel_bias[h] + mask
                    heads.append(torch.softmax(logits, dim=-1) @ v)
                attended = torch.cat(heads, dim=1)  # (N, C)
                for n, (y, x) in enumerate(source):
                    if y < height and x < width:
                        outputs[b, y, x] = attended[n]
    rows = [[torch.stack([outputs[b, y, x] for x in range(width)]) for y in range(height)] for b in range(batch)]
    return torch.stack([torch.stack(image_rows) for image_rows in rows])


CASES = [  # (B, H, W, heads, head_dim, window, shift)
    pytest.param(2, 14, 14, 2, 3, 7, 0, id="divisible-unshifted"),
    pytest.param(2, 14, 14, 2, 3, 7, 3, id="divisible-shifted"),
    pytest.param(1, 10, 12, 1, 24, 7, 0, id="padded-unshifted-hd24"),
    pytest.param(1, 10, 12, 3, 6, 7, 3, id="padded-shifted"),
    pytest.param(2, 5, 6, 8, 3, 7, 3, id="smaller-than-window-8-heads"),
    pytest.param(1, 9, 17, 4, 3, 8, 4, id="window8-shift4"),
    pytest.param(1, 15, 20, 6, 3, 7, 3, id="model-stride32-map"),
]


@pytest.mark.parametrize("batch, height, width, heads, head_dim, window, shift", CASES)
@pytest.mark.parametrize("with_pad", [True, False], ids=["qkv_pad", "zero-pad"])
def test_matches_explicit_loops(batch, height, width, heads, head_dim, window, shift, with_pad):
    channels = heads * head_dim
    qkv = torch.randn(batch, height, width, 3 * channels, dtype=torch.float64)
    rel_bias = torch.randn(heads, window**2, window**2, dtype=torch.float64)
    qkv_pad = torch.randn(3 * channels, dtype=torch.float64) if with_pad else None
    inputs = [t for t in (qkv, rel_bias, qkv_pad) if t is not None]
    leaves = [t.clone().requires_grad_() for t in inputs]
    ref_leaves = [t.clone().requires_grad_() for t in inputs]
    kwargs = dict(num_heads=heads, window_size=window, shift_size=shift)

    out = window_attention_ref(*leaves, **kwargs)
    expected = windowed_attention_loops(*ref_leaves, *([] if with_pad else [None]), heads, window, shift,
                                        head_dim**-0.5)
    assert_close("out", out, expected, **FLOAT64_TOL)

    upstream = torch.randn_like(expected)
    out.backward(upstream)
    expected.backward(upstream)
    for name, got, want in zip(("qkv", "rel_bias", "qkv_pad"), grads(*leaves), grads(*ref_leaves)):
        assert_close(f"d{name}", got, want, **FLOAT64_TOL)


def test_explicit_scale():
    qkv = torch.randn(1, 7, 7, 12, dtype=torch.float64)
    rel_bias = torch.randn(2, 49, 49, dtype=torch.float64)
    out = window_attention_ref(qkv, rel_bias, num_heads=2, window_size=7, scale=0.3)
    expected = windowed_attention_loops(qkv, rel_bias, None, 2, 7, 0, 0.3)
    assert_close("out", out, expected, **FLOAT64_TOL)


@pytest.mark.parametrize("shift", [0, 3])
def test_matches_timm_swin_block_on_divisible_maps(shift):
    """Outside oracle: timm's SwinTransformerBlock attention branch (roll, partition, WindowAttention with its own
    relative-position index and shift mask, merge) with the same weights as our layer."""
    from timm.models.swin_transformer import SwinTransformerBlock

    from sca_mtl.models.layers import WindowAttention

    dim, heads, window, size = 12, 3, 7, (14, 21)
    block = SwinTransformerBlock(dim, size, num_heads=heads, window_size=window, shift_size=shift).double().eval()
    layer = WindowAttention(dim, heads, window, shift, backend="torch").double()
    with torch.no_grad():
        layer.qkv.load_state_dict(block.attn.qkv.state_dict())
        layer.proj.load_state_dict(block.attn.proj.state_dict())
        block.attn.relative_position_bias_table.normal_()
        layer.relative_position_bias_table.copy_(block.attn.relative_position_bias_table)
    x = torch.randn(2, *size, dim, dtype=torch.float64)
    assert_close("out", layer(x), block._attn(x), **FLOAT64_TOL)
