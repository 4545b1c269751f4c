"""The HEAR modules' input contract (issue 19): options checked at load_model, audio checked at every
call (a non-empty batch of float samples in [-1, 1], finite, long enough), each with one clear message."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hear import MODULES, common

FAST = "width=small,input_seconds=1"


@pytest.fixture(scope="module")
def api():
    mod = __import__(MODULES["frame-level"], fromlist=["load_model"])
    return mod, mod.load_model(FAST)


CALLS = ["get_scene_embeddings", "get_timestamp_embeddings"]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("audio,error,match", [
    (torch.zeros(0, 16000), ValueError, r"an empty batch \(0 sounds\)"),
    (torch.zeros(2, 0), ValueError, "sounds of 0 samples"),
    (torch.zeros(16000), ValueError, r"found shape \(16000,\); for one sound pass audio\[None\]"),
    (torch.zeros(1, 2, 16000), ValueError, r"found shape \(1, 2, 16000\)"),
    (torch.zeros(2, 16000, dtype=torch.int16), TypeError, "found dtype torch.int16"),
    (torch.zeros(2, 16000, dtype=torch.bool), TypeError, "found dtype torch.bool"),
    (torch.full((2, 16000), 1e30), ValueError, r"samples up to 1e\+30 in magnitude.*\[-1, 1\]"),
    (torch.full((1, 16000), 1.01), ValueError, "samples up to 1.01"),
    (torch.full((1, 16000), float("nan")), ValueError, "NaN or inf"),
    (torch.full((1, 16000), float("-inf")), ValueError, "NaN or inf"),
    (torch.zeros(1, 100), ValueError, r"too short: frame-level \(the receptive field of its first convolution"),
    ("noise", TypeError, "expected a float tensor"),
], ids=["empty-batch", "zero-samples", "1-d", "3-d", "int16", "bool", "1e30", "1.01", "nan", "-inf",
        "too-short", "string"])
def test_audio_outside_the_contract_is_refused(api, call, audio, error, match):
    mod, model = api
    with pytest.raises(error, match=match):
        getattr(mod, call)(audio, model)


@pytest.mark.parametrize("call", CALLS)
def test_audio_inside_the_contract_is_embedded(api, call):
    mod, model = api
    edge = torch.ones(2, 8000) * (1 + 1e-6)                 # float rounding of a normalised clip
    edge[1] = -1.0
    out = getattr(mod, call)(edge, model)
    emb = out[0] if isinstance(out, tuple) else out
    assert emb.shape[0] == 2 and torch.isfinite(emb).all()
    as_array = getattr(mod, call)(np.zeros((1, 8000), np.float64), model)   # float64 numpy is a float
    assert (as_array[0] if isinstance(as_array, tuple) else as_array).shape[0] == 1


def test_a_model_that_is_not_the_modules(api):
    mod, _ = api
    with pytest.raises(TypeError, match="expected the HearModel of load_model"):
        mod.get_scene_embeddings(torch.zeros(1, 16000), torch.nn.Linear(2, 2))


@pytest.mark.parametrize("options,error,match", [
    ("batch_size=0", ValueError, "batch_size=0: expected an integer >= 1"),
    ("batch_size=-3", ValueError, "batch_size=-3"),
    ("batch_size=two", ValueError, "batch_size='two' is not a valid int"),
    ("seed=-1", ValueError, r"seed=-1: expected an integer in 0 .. 2\*\*32 - 1"),
    (f"seed={2 ** 64}", ValueError, "seed=18446744073709551616"),
    ("input_seconds=0", ValueError, "input_seconds=0.0: expected a finite number of seconds > 0"),
    ("input_seconds=nan", ValueError, "input_seconds=nan"),
    ("input_seconds=inf", ValueError, "input_seconds=inf"),
    ("width=huge", ValueError, "width 'huge': expected one of"),
    ("colour=red", ValueError, "unknown option 'colour'"),
    ("no/such/checkpoint.pt", FileNotFoundError, "does not exist"),
], ids=lambda x: x if isinstance(x, str) and "=" in x or "/" in str(x) else None)
def test_options_are_checked_at_load_model(options, error, match):
    mod = __import__(MODULES["frame-level"], fromlist=["load_model"])
    with pytest.raises(error, match=match):
        mod.load_model(options)


def test_options_from_the_environment_are_checked_too(monkeypatch):
    monkeypatch.setenv(common.ENV_OPTIONS, "batch_size=0")
    with pytest.raises(ValueError, match="batch_size=0"):
        common.parse_options("")
