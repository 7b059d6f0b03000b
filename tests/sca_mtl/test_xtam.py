"""DenseMTL's exchange block (sca_mtl/models/xtam.py): its parameters against the released modules' layers, its
output against the released code's formula (materialised softmax, loops over pairs), the sorted source order, and
its memory: linear in the tokens where the released code's N x N maps would need more than 1 GiB."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from sca_mtl.models.xtam import ExchangeBlock

C = 128  # DenseMTL's width at the exchange (decoder stage 1, H/2)


def released_pair_parameters(c: int) -> int:
    """components.py / mtlpt: Extractor conv3x3 with bias; SABlock(c, c/2) two 3x3 convs without bias; SxTAM three
    1x1 convs + BN and alpha; Project(3c/2 -> c) 1x1 conv + BN."""
    return (9 * c * c + c) + 2 * (9 * c * c // 2) + 3 * (c * c + 2 * c) + c + (3 * c // 2 * c + 2 * c)


@pytest.mark.parametrize("tasks", [2, 3, 4], ids=["SD", "SDN", "SDNE"])
def test_parameter_count_is_the_released_blocks(tasks):
    block = ExchangeBlock(["semseg", "depth", "normals", "edge"][:tasks], C, pool=4)
    post = (tasks - 1) * C * C + 2 * C  # the per-target Project((T-1) c -> c), the released 'add' fusion
    expected = tasks * (tasks - 1) * released_pair_parameters(C) + tasks * post
    assert sum(p.numel() for p in block.parameters()) == expected
    assert expected == {2: 773_120, 3: 2_318_592, 4: 4_636_672}[tasks]


def released_forward(block: ExchangeBlock, features: dict) -> dict:
    """ours_xatt.py's distillation_block with SxTAM and SA, 'add' fusion, written as the released code computes it:
    one pair at a time, the correlation matrix materialised, nearest down-scaling by nn.Upsample(1/p)."""
    p = block.pool
    messages = {}
    for source, target in block.pairs:
        layer = block.exchange[f"{source}_to_{target}"]
        x, y = features[target], layer.extract(features[source])
        sa = layer.gate.conv(y) * torch.sigmoid(layer.gate.mask(y))
        x_ = F.interpolate(x, scale_factor=1 / p, mode="nearest")
        b = layer.query(x_).flatten(2).transpose(1, 2)
        c = layer.key(F.max_pool2d(y, p)).flatten(2)
        d = layer.value(F.max_pool2d(y, p))
        corr = torch.softmax(b @ c / b.shape[2] ** 0.5, dim=-1).transpose(1, 2)
        out = F.interpolate((d.flatten(2) @ corr).view_as(x_), scale_factor=p, mode="nearest") * layer.alpha
        messages[source, target] = layer.merge(torch.cat([sa, out], dim=1))
    return {t: features[t] + block.fuse[t](torch.cat([messages[s, t] for s in block.tasks if s != t], dim=1))
            for t in block.tasks}


def test_output_is_the_released_formula():
    torch.manual_seed(0)
    block = ExchangeBlock(["semseg", "depth", "normals"], 16, pool=4).double()
    for module in block.modules():  # open the alpha gates and give the BatchNorms statistics of their own
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(module.weight)
            torch.nn.init.normal_(module.bias)
            torch.nn.init.normal_(module.running_mean, std=0.1)
            torch.nn.init.uniform_(module.running_var, 0.5, 2.0)
    for name, parameter in block.named_parameters():
        if name.endswith("alpha"):
            torch.nn.init.normal_(parameter)
    block.eval()
    features = {t: torch.randn(2, 16, 16, 24, dtype=torch.float64) for t in block.tasks}
    with torch.no_grad():
        ours, released = block(features), released_forward(block, features)
    for task in block.tasks:
        torch.testing.assert_close(ours[task], released[task], rtol=1e-10, atol=1e-10)


def test_sources_in_sorted_order_whatever_the_given_order():
    torch.manual_seed(0)
    first = ExchangeBlock(["semseg", "depth", "normals"], 16, pool=2).eval()
    second = ExchangeBlock(["normals", "semseg", "depth"], 16, pool=2).eval()
    second.load_state_dict(first.state_dict())
    assert first.tasks == second.tasks == ["depth", "normals", "semseg"]
    features = {t: torch.randn(1, 16, 8, 8) for t in first.tasks}
    with torch.no_grad():
        a, b = first(features), second(features)
    assert all(torch.equal(a[t], b[t]) for t in a)


def test_alpha_starts_closed_and_sides_must_divide_by_the_pooling():
    block = ExchangeBlock(["semseg", "depth"], 8, pool=4)
    assert all(not layer.alpha.any() for layer in block.exchange.values())
    with pytest.raises(ValueError, match="multiples of 4, got 10x12"):
        block({t: torch.randn(1, 8, 10, 12) for t in block.tasks})


MEMORY = textwrap.dedent("""
    import json, resource, torch
    from sca_mtl.models.xtam import ExchangeBlock
    torch.manual_seed(0)
    block = ExchangeBlock(["semseg", "depth"], 8, pool=1)
    features = {t: torch.randn(1, 8, 96, 96, requires_grad=True) for t in block.tasks}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = block(features)
    sum((y * torch.randn_like(y)).sum() for y in out.values()).backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_growth_kib": after - before}))
""")


@pytest.mark.slow
def test_the_exchange_never_holds_the_attention_matrix():
    """Two directed pairs on a 96 x 96 grid at pool 1: N = 9,216 tokens, so each pair's N x N softmax is 324 MiB in
    float32 and the released code keeps two of them for the backward and makes more in it (> 1 GiB). The process's
    peak resident memory may grow by at most 256 MiB over forward and backward (in a fresh process, so that the
    measurement is its own). Measured on 2026-12-06 (2-core CPU): 68 MiB; 2,006 MiB with the attention computed as
    softmax(QKᵀ/√C)V instead of the fused call."""
    result = subprocess.run([sys.executable, "-c", MEMORY], capture_output=True, text=True, timeout=600, check=True)
    growth_mib = json.loads(result.stdout.splitlines()[-1])["peak_growth_kib"] / 1024
    assert growth_mib < 256, f"peak memory grew by {growth_mib:.0f} MiB"
