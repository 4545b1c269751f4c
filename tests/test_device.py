"""toolkit/device.py: device choice, precision, and halving the batch on out-of-memory."""
import numpy as np
import pytest
import torch

import architectures
from toolkit.device import (AdaptiveBatch, DeviceError, cast_model, check_precision, compute_dtype,
                            is_out_of_memory, precision_context, resolve_device)
from features.extract import layer_means


def test_resolve_device_names_what_is_wrong():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="expected auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda")
        assert resolve_device("auto") == torch.device("cpu")


def test_precision_is_checked_against_the_device():
    cpu = torch.device("cpu")
    assert check_precision("float32", cpu) == "float32"
    assert check_precision("bf16", cpu) == "bf16"
    with pytest.raises(DeviceError, match="needs --device cuda"):
        check_precision("tf32", cpu)
    with pytest.raises(DeviceError, match="expected one of float32, tf32, bf16"):
        check_precision("fp8", cpu)


def test_precision_context_restores_torch_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    with precision_context(torch.device("cpu"), "float32"):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is True
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_bf16_changes_the_arithmetic_but_not_the_features_much():
    model = architectures.build("sample-level", width="small", seed=0).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 59049)).astype(np.float32)) * 0.1
    with torch.inference_mode():
        f32 = layer_means(model.extract_features(x))
        cast_model(model, "bf16")
        assert compute_dtype(model) == torch.bfloat16
        b16 = layer_means(model.extract_features(x.to(torch.bfloat16)))
    assert b16.dtype == torch.float32  # means accumulate in float32
    rel = float((b16 - f32).abs().max() / f32.abs().max())
    # measured 3.6e-3 (bf16's unit roundoff is 3.9e-3); float16 gives 5.8e-4, float32 ~1e-7: bf16 really
    # ran (not float32, not float16), and within 2x of the measured change (the bound was 0.05)
    assert 1e-3 < rel < 8e-3, rel
    mfcc = architectures.build("mfcc")
    assert compute_dtype(cast_model(mfcc, "bf16")) == torch.float32  # no parameters: stays float32


class _OOMAbove:
    """A computation that runs out of memory above ``limit`` rows (as a GPU would)."""

    def __init__(self, limit, fn):
        self.limit, self.fn, self.calls = limit, fn, []

    def __call__(self, x):
        self.calls.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.fn(x)


def test_adaptive_batch_halves_on_out_of_memory_and_keeps_every_row():
    x = np.arange(22, dtype=np.float32).reshape(11, 2)
    fn = _OOMAbove(2, lambda a: a * 2)
    ab = AdaptiveBatch(8)
    out = ab(fn, x)
    np.testing.assert_array_equal(out, x * 2)
    assert ab.halvings == [(8, 4), (4, 2)] and ab.size == 2
    assert fn.calls[:3] == [8, 4, 2] and max(fn.calls[3:]) == 2  # the smaller size is remembered
    assert ab(fn, x).shape == (11, 2) and ab.halvings == [(8, 4), (4, 2)]  # no new halving next time


def test_adaptive_batch_gives_up_clearly_and_passes_other_errors_on():
    with pytest.raises(DeviceError, match="does not fit .* even at batch size 1"):
        AdaptiveBatch(4)(_OOMAbove(0, lambda a: a), np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="not memory"):
        AdaptiveBatch(4)(lambda a: (_ for _ in ()).throw(ValueError("not memory")), np.zeros((3, 1)))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_front_end_features_survive_a_forced_out_of_memory():
    model = architectures.build("vgg", width="small", seed=1).eval()
    x = np.random.default_rng(1).standard_normal((5, 1376, 96)).astype(np.float32)

    def features(a):
        with torch.inference_mode():
            return layer_means(model.extract_features(torch.from_numpy(a))).numpy()

    one_by_one = np.concatenate([features(x[i:i + 1]) for i in range(len(x))])
    ab = AdaptiveBatch(4)
    out = ab(_OOMAbove(1, features), x)
    assert ab.halvings == [(4, 2), (2, 1)]
    np.testing.assert_array_equal(out, one_by_one)  # same batches of 1: the same bytes
