"""embed() outside its input contract (issue 19): an empty batch, a clip of 0 samples, NaN / inf samples,
samples of absurd magnitude, a clip too short for the front-end: one ValueError naming the clip and what is
expected. The samples check is the one the HEAR modules' check_audio makes (features.embed.check_samples)."""
from __future__ import annotations

import numpy as np
import pytest

from features import extract as ex
from features.embed import MAX_PEAK, embed

OK = np.full(12000, 0.1, np.float32)


@pytest.fixture(scope="module")
def model():
    return ex.build_frontend("frame-level", width="small", seed=0)


def _with(bad, at=1):
    clips = [OK, OK, OK]
    clips[at] = bad
    return clips


@pytest.mark.parametrize("waves,match", [
    ([], r"^waves: an empty batch \(0 clips\); expected at least one clip"),
    (np.zeros((0, 12000), np.float32), r"^waves: an empty batch \(0 clips\)"),
    (_with(np.zeros(0, np.float32)), r"^waves\[1\]: 0 samples; expected float samples at full scale"),
    (np.zeros((2, 0), np.float32), r"^waves\[0\]: 0 samples"),
    (_with(np.r_[OK[:-1], np.nan].astype(np.float32), at=2),
     r"^waves\[2\]: has NaN or inf samples \(1 of 12000\); expected finite float samples"),
    (_with(np.r_[-np.inf, OK[1:]].astype(np.float32)), r"^waves\[1\]: has NaN or inf samples \(1 of 12000\)"),
    (_with(np.full(12000, 1e30, np.float32)),
     r"^waves\[1\]: samples up to 1e\+30 in magnitude; expected float samples at full scale \+-1"),
    (_with(np.full(12000, -32768.0, np.float32), at=0),
     r"^waves\[0\]: samples up to 32768 in magnitude.*divide by its full scale \(32768 for int16\)"),
    (_with(np.full(100, 0.1, np.float32)),
     r"^waves\[1\]: too short: 100 samples \(8.3 ms at 12000 Hz\) as passed; (FrameLevel|frame-level) \(the receptive field of its first convolution, "
     r"512 samples\) needs at least 512"),
], ids=["empty-list", "empty-array", "zero-samples", "zero-samples-batch", "nan", "-inf", "1e30",
        "int16-as-float", "too-short"])
@pytest.mark.parametrize("hop", [None, 0.5])
def test_bad_clips_are_refused_by_index(model, waves, match, hop):
    with pytest.raises(ValueError, match=match):
        embed(model, waves, sr=12000, hop=hop, input_seconds=1)


def test_inside_the_contract_is_embedded(model):
    """Loud float audio (as a float file may hold, kept by extraction) up to MAX_PEAK, integer PCM at
    any level, and a clip of exactly the front-end's minimum are embedded, finite."""
    loud = np.full(12000, MAX_PEAK, np.float32)
    pcm = np.full(12000, -32768, np.int16)
    shortest = np.full(512, 0.1, np.float32)
    X = embed(model, [loud, pcm, shortest, OK], sr=12000, input_seconds=1)
    assert X.shape[0] == 4 and np.isfinite(X).all()
    # one row per clip, the loud clip's own: not a neighbour's copy
    assert not np.array_equal(X[0], X[3])


def test_a_waves_that_is_not_a_list(model):
    with pytest.raises(TypeError, match="waves: expected an array or a list of clips, found int"):
        embed(model, 3, sr=12000)
