"""The memo of validated op calls (kernels/_call_memo.py): a call like one seen before skips the checks and the
planning, any difference the checks could see makes a new key, bad calls are still rejected, and memoised calls at
other addresses still compute the right values."""

from __future__ import annotations

import pytest
import torch

import kernels
from kernels import _call_memo, concat_conv, linear_attention
from kernels._call_memo import CallMemo, call_key
from tests._utils import record_calls
from tests.kernels.test_concat_conv import EPILOGUES, _build, _check_against_reference
from tests.kernels.test_linear_attention import check_stacked_parity, separate_parts
from tests.kernels.test_window_attention import make_inputs, run_and_compare
from tests.kernels.test_window_attention import wa as window_attention

FP32 = torch.float32


def test_call_key_sees_what_the_checks_read():
    x = torch.randn(2, 3, 4)
    same = [torch.randn(2, 3, 4), torch.empty(2, 3, 4)]
    assert all(call_key([y], 1, "relu") == call_key([x], 1, "relu") for y in same)
    others = [
        call_key([torch.randn(2, 3, 5)], 1, "relu"),  # shape
        call_key([x.transpose(1, 2).contiguous().transpose(1, 2)], 1, "relu"),  # strides
        call_key([x.double()], 1, "relu"),  # dtype
        call_key([torch.nn.Parameter(x)], 1, "relu"),  # type
        call_key([None], 1, "relu"),
        call_key([x], True, "relu"),  # True == 1, but the checks tell them apart
        call_key([x], 1.0, "relu"),
        call_key([x], 1, None),
        call_key([x], [1], "relu"),
        call_key([x], (1,), "relu"),
        call_key([x], (True,), "relu"),
    ]
    assert len({call_key([x], 1, "relu"), *others}) == len(others) + 1


def test_unhashable_calls_have_no_key():
    assert _call_memo.memo_key([torch.randn(2)], [[1, 2]]) is None
    assert _call_memo.memo_key([3], 1) is None  # not a tensor: the checks reject it


def test_memo_is_bounded_and_forgets_the_oldest():
    memo = CallMemo(size=3)
    for i in range(5):
        memo.put((i,), i)
    memo.put(None, "never kept")
    assert len(memo) == 3 and memo.get((0,)) is None and memo.get((1,)) is None and memo.get((4,)) == 4
    assert memo.get(None) is None


def test_concat_conv_second_call_skips_the_checks_and_the_plan(monkeypatch):
    monkeypatch.setattr(concat_conv, "_CALLS", CallMemo())
    checks = record_calls(monkeypatch, concat_conv, ["check_concat_conv1x1"])
    plans = record_calls(monkeypatch, concat_conv, ["_plan"])
    specs = [(3, 8, 12), (4, 8, 12), (2, 4, 6)]
    for _ in range(2):  # new tensors each time: other addresses, the same key
        _check_against_reference(*_build(specs, [0, 1, 0, 2], 5, None, EPILOGUES["bias-relu"], FP32), FP32)
    assert checks == ["check_concat_conv1x1"] and plans == ["_plan"]
    _check_against_reference(*_build(specs, [0, 1, 0, 2], 5, (9, 13), EPILOGUES["bias-relu"], FP32), FP32)
    _check_against_reference(*_build(specs, [0, 1, 2, 0], 5, None, EPILOGUES["bias-relu"], FP32), FP32)
    assert len(checks) == len(plans) == 3  # another output size, another order of the same tensors


def test_concat_conv_memoised_call_still_rejects_bad_calls(monkeypatch):
    monkeypatch.setattr(concat_conv, "_CALLS", CallMemo())
    inputs, weight, bias, _, _, _ = _build([(3, 8, 12), (2, 4, 6)], None, 5, None, EPILOGUES["bias-relu"], FP32)
    with kernels.use_backend("triton"):
        kernels.concat_conv1x1(inputs, weight, bias, activation="relu", out_size=(8, 12))
        with pytest.raises(ValueError, match="out_size"):
            kernels.concat_conv1x1(inputs, weight, bias, activation="relu", out_size=(8.0, 12))
        with pytest.raises(ValueError, match="bias"):
            kernels.concat_conv1x1(inputs, weight, bias[:4], activation="relu", out_size=(8, 12))
        with pytest.raises(ValueError, match="dtype"):
            kernels.concat_conv1x1([inputs[0], inputs[1].double()], weight, bias, activation="relu", out_size=(8, 12))
        with pytest.raises(TypeError, match="list or tuple"):
            kernels.concat_conv1x1(inputs[0], weight, bias, activation="relu", out_size=(8, 12))


def test_window_attention_second_call_skips_the_checks(monkeypatch):
    monkeypatch.setattr(window_attention, "_CALLS", CallMemo())
    checks = record_calls(monkeypatch, window_attention, ["check_window_attention"])
    for _ in range(2):
        run_and_compare(make_inputs(1, 9, 9, 2, 3, 7), num_heads=2, window_size=7, shift_size=3)
    assert checks == ["check_window_attention"]
    run_and_compare(make_inputs(1, 9, 9, 2, 3, 7), num_heads=2, window_size=7, shift_size=2)
    assert len(checks) == 2
    qkv, rel_bias, qkv_pad = make_inputs(1, 9, 9, 2, 3, 7)
    with kernels.use_backend("triton"), pytest.raises(TypeError, match="num_heads"):
        kernels.window_attention(qkv, rel_bias, qkv_pad, num_heads=2.0, window_size=7, shift_size=3)


def test_linear_attention_second_call_skips_the_checks(monkeypatch):
    monkeypatch.setattr(linear_attention, "_CALLS", CallMemo())
    checks = record_calls(monkeypatch, linear_attention, ["check_linear_cross_attention"])
    q, k, v = separate_parts(3, 2, 4, 5, 16, 12, FP32)
    check_stacked_parity(q, k, v, FP32)
    # the same shapes as views of one buffer each: other offsets between the parts, the same key
    stacked = [torch.cat(parts).detach().requires_grad_() for parts in (q, k, v)]
    check_stacked_parity(*(list(x.split(2)) for x in stacked), FP32)
    assert checks == ["check_linear_cross_attention"]
    with kernels.use_backend("triton"), pytest.raises(ValueError, match="share one shape"):
        kernels.linear_cross_attention(q, k, v[:2] + [v[2][:, :4]])
    with kernels.use_backend("triton"), pytest.raises(ValueError, match="eps"):
        kernels.linear_cross_attention(q, k, v, eps=0.0)
    assert len(checks) == 3
