"""Tests of the front-ends: feature lengths, shapes, seeding, init statistics, batch independence,
dims round trips, the MFCC baseline against librosa, and fast == plain implementations."""
from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from architectures import ARCHITECTURES, WIDTHS, build
from architectures.cost import count_params, flops_per_clip
from architectures.init import TF1_FACTOR, TRUNCATED_STD, fan_in, he_std, init_weights
from architectures.layers import same_pad

N_SAMPLES, N_FRAMES, N_MELS = 350000, 1376, 96
CONV_ARCHS = [name for name in ARCHITECTURES if name != "mfcc"]
EXPECTED_LENGTHS = {  # frontends.md
    "sample-level": (3584, 112), "frame-level": (3584, 120), "frame-level-many": (3584, 120),
    "7x96": (3585, 120), "7x86": (3585, 120), "timbral": (3584, 112), "temporal": (3584, 112),
    "timbral+temporal": (3584, 112), "timbral+time": (3584, 112), "vgg": (3585, 120), "mfcc": (120, 120),
}
# per averaged layer at the study's input lengths: the non-channel shape
STUDY_SHAPES = {
    "sample-level": [(116666,), (38888,), (12962,), (4320,), (1440,), (480,), (160,)],
    "frame-level": [(10922,), (10916,), (10916,), (5458,)],
    "frame-level-many": [(10938,)] * 5 + [(10932,), (10932,), (5466,)],
    "7x96": [(1370,)], "7x86": [(1370,)], "timbral": [(1376,)], "temporal": [(1376,)],
    "timbral+temporal": [(1376,), (1376,)], "timbral+time": [(1376,), (1376,)],
    "vgg": [(344, 48), (86, 16), (17, 8), (4, 4), (1, 1)], "mfcc": [(1,)],
}


def clip(model, batch: int = 1, samples: int = 8000, frames: int = 64, seed: int = 0) -> torch.Tensor:
    """A random batch of the model's input kind (vgg needs 1280 frames at least)."""
    gen = torch.Generator().manual_seed(seed)
    if model.input_kind in ("waveform", "clip"):  # clip: the mfcc baseline's whole clips
        return torch.randn(batch, samples, generator=gen) * 0.1
    frames = max(frames, 1280) if "VGG" in type(model).__name__ else frames
    return torch.randn(batch, frames, N_MELS, generator=gen) * 10 - 30  # log-mel-like dB values


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_feature_lengths_every_width(name):
    """Every front-end of the FRONTENDS table: its layers add up to its feature length at both widths;
    the study's own (frontends.md) have the published lengths (a new row needs no entry here)."""
    for i, width in enumerate(("large", "small")):
        model = build(name, width)
        if name in EXPECTED_LENGTHS:
            assert model.feature_length == EXPECTED_LENGTHS[name][i]
        assert model.feature_length > 0
        assert sum(c for _, c in model.layers) == model.feature_length
        assert len({n for n, _ in model.layers}) == len(model.layers)  # names are unique


def test_timbral_temporal_branches_split_evenly():
    for name in ("timbral+temporal", "timbral+time"):
        assert [c for _, c in build(name, "large").layers] == [1792, 1792]
        assert [c for _, c in build(name, "small").layers] == [56, 56]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_study_shapes_per_layer(name):
    # meta tensors give the shapes of the study's full-length inputs without computing them
    model = build(name, "small")
    shape = (N_SAMPLES,) if model.input_kind in ("waveform", "clip") else (N_FRAMES, N_MELS)
    if name == "mfcc":  # always one (batch, 120, 1) "layer"; a short clip keeps librosa quick
        outs = model.extract_features(torch.linspace(-0.1, 0.1, 12000)[None].sin())
    else:
        model = model.to("meta")
        model.fast = False
        outs = model.extract_features(torch.zeros((2, *shape), device="meta"))
    assert len(outs) == len(model.layers)  # one map per averaged layer, any front-end of the table
    assert [o.shape[1] for o in outs] == [c for _, c in model.layers]
    if name in STUDY_SHAPES:  # the study's own front-ends: the published per-layer lengths
        assert [tuple(o.shape[2:]) for o in outs] == STUDY_SHAPES[name]
    assert [o.shape[1] for o in outs] == [c for _, c in model.layers]
    assert all(o.shape[0] == (1 if name == "mfcc" else 2) for o in outs)


@pytest.mark.parametrize("name", CONV_ARCHS)
def test_forward_is_batch_channels_time(name):
    model = build(name, "small")
    x = clip(model, batch=2)
    with torch.inference_mode():
        out = model(x)
        feats = model.extract_features(x)
    assert out.dim() == 3 and out.shape[0] == 2
    if name in ("timbral", "temporal", "timbral+temporal", "timbral+time"):
        assert torch.equal(out, torch.cat(feats, dim=1))
    elif name == "vgg":  # frequency folded into channels
        last = feats[-1]
        assert out.shape == (2, last.shape[1] * last.shape[3], last.shape[2])
    else:
        assert torch.equal(out, feats[-1])


@pytest.mark.parametrize("name", CONV_ARCHS)
def test_same_seed_same_weights_and_outputs_other_seed_differs(name):
    a, b, c = build(name, "small", seed=3), build(name, "small", seed=3), build(name, "small", seed=4)
    for (ka, va), (kb, vb), (_, vc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
        if ka.endswith("weight"):
            assert not torch.equal(va, vc)
    x = clip(a)
    with torch.inference_mode():
        assert all(torch.equal(p, q) for p, q in zip(a.extract_features(x), b.extract_features(x)))
        assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_global_rng_untouched(name):
    state = torch.random.get_rng_state()
    model = build(name, "small", seed=7)
    with torch.inference_mode():
        model(clip(model))
    assert torch.equal(state, torch.random.get_rng_state())


def test_init_statistics_match_tf1_variance_scaling():
    # many weights of one shape: std and truncation are measurable
    model = build("7x96", "large", seed=0)
    w = model.conv.weight.detach().double()
    n_in = fan_in(w)
    assert n_in == 7 * 96
    target = math.sqrt(2.0 / n_in)
    underlying = he_std(n_in)
    assert underlying == pytest.approx(math.sqrt(TF1_FACTOR * 2.0 / n_in))
    # contrib's 1.3 makes the truncated std 1.0029 x the He std (keras' exact constant would give 1.0)
    assert w.std().item() == pytest.approx(target * math.sqrt(TF1_FACTOR) * TRUNCATED_STD, rel=0.005)
    assert w.abs().max().item() <= 2 * underlying + 1e-7
    assert w.abs().max().item() > 1.95 * underlying  # the cut is reached, not a narrower distribution
    assert abs(w.mean().item()) < 0.01 * target
    assert all(torch.count_nonzero(b) == 0 for n, b in model.named_parameters() if n.endswith("bias"))


@pytest.mark.parametrize("name", CONV_ARCHS)
def test_every_layer_has_he_std(name):
    for pname, p in build(name, "small").named_parameters():
        if pname.endswith("weight") and p.numel() >= 500:  # the std is estimated within ~3 %
            expected = he_std(fan_in(p)) * TRUNCATED_STD  # std of a normal truncated at +-2 sigma
            assert p.std().item() == pytest.approx(expected, rel=0.15), pname
            assert p.abs().max().item() <= 2 * he_std(fan_in(p)) + 1e-7, pname


def test_keras_variant_has_exact_he_std():
    conv = torch.nn.Conv1d(64, 2000, 3)
    init_weights(conv, seed=0, variant="keras")
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 192), rel=0.005)
    with pytest.raises(ValueError, match="tf1, keras"):
        init_weights(conv, seed=0, variant="torch")


@pytest.mark.parametrize("name", CONV_ARCHS)
def test_batched_equals_one_by_one(name):
    model = build(name, "small")
    x = clip(model, batch=3)
    with torch.inference_mode():
        together = model.extract_features(x)
        alone = [model.extract_features(x[i:i + 1]) for i in range(3)]
    for layer, whole in enumerate(together):
        parts = torch.cat([a[layer] for a in alone])
        # MKL-DNN may pick another algorithm per batch size: float32 rounding, not batch dependence
        torch.testing.assert_close(whole, parts, rtol=1e-4, atol=1e-5 * parts.abs().max().item())


@pytest.mark.parametrize("name", ["sample-level", "7x86", "timbral", "vgg"])
def test_batchnorm_makes_features_depend_on_the_batch(name):
    model = build(name, "small", batchnorm=True)
    x = clip(model, batch=3)
    with torch.inference_mode():
        together = model.extract_features(x)[0][:1]
        alone = model.extract_features(torch.cat([x[:1], x[:1] * 0.5 + 1.0]))[0][:1]
    assert not torch.allclose(together, alone, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_dims_round_trip(name):
    model = build(name, "small", seed=5)
    rebuilt = ARCHITECTURES[name](**model.dims)
    assert rebuilt.dims == model.dims
    assert rebuilt.layers == model.layers
    for (k, v), (k2, v2) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'; available: sample-level, frame-level"):
        build("resnet")
    with pytest.raises(ValueError, match="unknown width 'huge'; available: large, small"):
        build("vgg", width="huge")
    with pytest.raises(ValueError, match="bad keyword"):
        build("vgg", n=3)
    assert set(WIDTHS) == set(ARCHITECTURES)


def test_bad_input_shapes_are_named():
    with pytest.raises(ValueError, match=r"expected input \(batch, frames, 96\), found \(2, 64, 40\)"):
        build("7x86", "small")(torch.zeros(2, 64, 40))
    with pytest.raises(ValueError, match=r"expected input \(batch, samples\), found \(2, 1, 8000\)"):
        build("sample-level", "small")(torch.zeros(2, 1, 8000))
    with pytest.raises(ValueError, match="too short"):
        build("vgg", "small")(torch.zeros(1, 1000, 96))
    with pytest.raises(ValueError, match="multiple of 4"):
        build("temporal", n=6)


def test_mfcc_equals_librosa():
    """The study's formula: MFCCs of the clip, raw first differences, [mean, std] of each in that order."""
    gen = np.random.default_rng(0)
    t = np.arange(24000) / 12000
    waves = np.stack([np.sin(2 * np.pi * 440 * t) + 0.1 * gen.standard_normal(t.size),
                      gen.standard_normal(t.size)]).astype(np.float32)
    got = build("mfcc")(torch.from_numpy(waves)).numpy()
    assert got.shape == (2, 120, 1)
    for wave, feats in zip(waves, got[:, :, 0]):
        m = librosa.feature.mfcc(y=wave, sr=12000, n_mfcc=20)
        d1 = np.diff(m, axis=1)
        d2 = np.diff(d1, axis=1)
        expected = np.concatenate([m.mean(1), m.std(1), d1.mean(1), d1.std(1), d2.mean(1), d2.std(1)])
        np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
    # clips of unequal length come as a list; each is computed whole
    listed = build("mfcc")([torch.from_numpy(waves[0]), torch.from_numpy(waves[1, :5000])]).numpy()
    np.testing.assert_array_equal(listed[0], got[0])
    assert not np.allclose(listed[1], got[1])
    assert count_params(build("mfcc")) == 0


# the front-ends with a tiled fast path; the tests lower layers.TILED_MIN_FILTERS (a speed threshold,
# not a correctness one) so the small widths take it; vgg's 24 filters also run its padding to 32 channels
TILED = ("sample-level", "vgg")  # frame-level(-many): measured no faster tiled, removed


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights as training leaves them: each weight scaled per output channel and perturbed, every bias
    random and non-zero (the init's zero biases would hide a fast path that drops or misplaces them)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            else:
                scale = torch.exp(0.3 * torch.randn(p.shape[0], *[1] * (p.dim() - 1), generator=gen))
                p.mul_(scale).add_(0.3 * p.std() * torch.randn(p.shape, generator=gen))
    return model


def fast_model(name: str, seed: int = 1) -> torch.nn.Module:
    return trained_like(build(name, "small", seed=seed), seed)


def layer_means(outs) -> torch.Tensor:
    return torch.cat([o.mean(dim=tuple(range(2, o.dim()))) for o in outs], dim=1)


@pytest.mark.parametrize("tile_bytes", [None, 20000])
@pytest.mark.parametrize("name", CONV_ARCHS)
def test_fast_equals_plain_with_biases(name, tile_bytes, monkeypatch):
    # every kept fast path against the plain nn.Conv layers, with trained-like weights and non-zero
    # biases; tile_bytes=20000 forces many tiles (and a short last one) through the tiled paths
    from architectures import layers
    monkeypatch.setattr(layers, "TILED_MIN_FILTERS", 1)
    if tile_bytes:
        monkeypatch.setattr(layers, "TILE_BYTES", tile_bytes)
        monkeypatch.setattr(layers, "MIN_ROWS", 1)  # band_conv_max: several chunks per clip too
    model = fast_model(name)
    x = clip(model, batch=2, samples=4001, frames=83)
    with torch.inference_mode():
        if name in TILED:
            assert layers.use_tiled(model, x)
        fast = model.extract_features(x)
        model.fast = False
        plain = model.extract_features(x)
        for conv in (m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))):
            conv.bias.zero_()
        no_bias = layer_means(model.extract_features(x))
    assert [f.shape for f in fast] == [p.shape for p in plain]
    for f, p in zip(fast, plain):
        torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-5 * p.abs().max().item())
    # the features (per-layer means) to 1e-5 of their largest value
    got, want = layer_means(fast), layer_means(plain)
    scale = want.abs().amax(dim=1, keepdim=True)
    assert ((got - want).abs() / scale).max().item() < 1e-5
    # and the biases matter: without them the features move by far more than the tolerance
    assert ((no_bias - want).abs() / scale).max().item() > 1e-3


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("tile_rows", [None, 6])
@pytest.mark.parametrize("name", ["temporal", "timbral+temporal", "timbral+time"])
def test_extract_means_equals_the_means_of_the_plain_maps(name, tile_rows, onednn, monkeypatch):
    # the fused means (temporal's maps never reach memory) against the plain layers' maps averaged;
    # tile_rows=6 gives tiles of two frames of the 3 clips and a last one of one; onednn=False takes
    # the addmm + ReLU fallback of builds without oneDNN's fused linear
    from architectures import temporal
    from features.compute import _features_of_batch
    if tile_rows:
        monkeypatch.setattr(temporal, "MEANS_TILE_ROWS", tile_rows)
    if not onednn:
        monkeypatch.setattr(temporal, "_onednn_linear_works", lambda dtype: False)
    else:  # this CPU build of torch has the fused op, so the test exercises it
        assert temporal._onednn_linear_works(torch.float32)
    model = fast_model(name)
    x = clip(model, batch=3, frames=83)
    with torch.inference_mode():
        got = model.extract_means(x)
        extracted = _features_of_batch(model, x.numpy(), torch.device("cpu"))  # what extraction stores
        model.fast = False
        want = layer_means(model.extract_features(x))
        plain = model.extract_means(x)
    assert got.dtype == torch.float32 and got.shape == want.shape == (3, model.feature_length)
    scale = want.abs().amax(dim=1, keepdim=True)
    assert ((got - want).abs() / scale).max().item() < 1e-5
    np.testing.assert_array_equal(extracted, got.numpy())
    torch.testing.assert_close(plain, want)  # without the fast path: the maps, averaged
    # batch norm (batch statistics) has no fused path: the maps' means, batch-dependent as they are
    bn = build(name, "small", seed=1, batchnorm=True)
    with torch.inference_mode():
        torch.testing.assert_close(bn.extract_means(x), layer_means(bn.extract_features(x)))


@pytest.mark.parametrize("name", TILED)
def test_tiled_path_only_at_inference_and_large_widths(name):
    from architectures.layers import TILED_MIN_FILTERS, use_tiled
    assert all(WIDTHS[name]["large"]["filters"] >= TILED_MIN_FILTERS > WIDTHS[name]["small"]["filters"]
               for name in TILED)
    model = build(name, filters=TILED_MIN_FILTERS)
    x = clip(model, batch=1, samples=4001)
    with torch.inference_mode():
        assert use_tiled(model, x)
        assert not use_tiled(build(name, "small"), x)  # 15-30 filters: the plain layers are faster
        assert not use_tiled(build(name, filters=TILED_MIN_FILTERS, batchnorm=True), x)
        assert not use_tiled(model, x.to("meta"))  # CPU only: on a GPU the plain convs are faster
        model.fast = False
        assert not use_tiled(model, x)
    model.fast = True
    assert not use_tiled(model, x)  # autograd on: the plain layers, which training differentiates


def test_plain_paths_match_explicit_reference_ops():
    # the plain paths themselves against textbook formulas
    x = clip(build("7x86", "small"), batch=1, frames=30)
    model = build("7x86", filters=4, fast=False)
    w, b = model.conv.weight[:, 0], model.conv.bias  # (4, 7, 86)
    ref = torch.stack([torch.stack([(x[0, t:t + 7, f:f + 86] * w).sum(dim=(1, 2)) for f in range(11)]).amax(0)
                       for t in range(24)]).t() + b[:, None]
    torch.testing.assert_close(model.extract_features(x)[0][0], F.relu(ref), rtol=1e-4, atol=1e-4)
    # temporal: even kernels pad one more zero on the right (TF 'same')
    assert same_pad(100, 128) == (63, 64) and same_pad(100, 165) == (82, 82)
    assert same_pad(350000, 512, 32) == (248, 248) and same_pad(350000, 32, 32) == (8, 8)
    temporal = build("temporal", n=4, fast=False)
    env = x[0].mean(dim=1)
    conv = temporal.convs[1]  # kernel 128
    padded = F.pad(env, (63, 64))
    ref = torch.stack([(padded[t:t + 128] * conv.weight[:, 0]).sum(1) for t in range(30)]).t() + conv.bias[:, None]
    torch.testing.assert_close(temporal.branch_outputs(x)[1][0], F.relu(ref), rtol=1e-4, atol=1e-5)


def test_cost_counts_the_specified_layers():
    model = build("7x96", filters=10)
    assert count_params(model) == 10 * 7 * 96 + 10
    assert flops_per_clip(model, (100, 96)) == 2 * 7 * 96 * 10 * 94
    small = build("sample-level", "small")
    expected = 2 * 16 * 3 * 116666 + sum(2 * 16 * 16 * 3 * n for n in (116666, 38888, 12962, 4320, 1440, 480))
    assert flops_per_clip(small, (N_SAMPLES,)) == expected
    assert small.fast  # counting does not leave the model switched to its plain path
    assert flops_per_clip(build("mfcc"), (N_SAMPLES,)) == 0


# CUDA against CPU, every front-end at both widths to 1e-5 relative: tests/test_gpu.py


@pytest.mark.parametrize("name", ["7x96", "7x86", "timbral"])
def test_band_conv_max_chunks_equal_plain_conv(name, monkeypatch):
    # tiny chunks (several per clip, of unequal size) give the same map as the plain Conv2d + max
    from architectures import layers
    monkeypatch.setattr(layers, "MIN_ROWS", 1)
    model = build(name, "small", seed=3)
    convs = [model.conv] if hasattr(model, "conv") else list(model.convs)
    x = clip(model, batch=2, frames=37)
    with torch.inference_mode():
        got = layers.band_conv_max(x, convs, relu=True, chunk_bytes=5000)
        want = torch.cat([F.relu(conv(x[:, None]).amax(dim=3)) for conv in convs], dim=1)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("name", CONV_ARCHS)
def test_fast_path_trains_like_plain(name):
    # trained/ trains front-ends with fast=True: outputs and weight gradients must match the plain path
    # (band_conv_max's differentiable form; the tiled paths step aside under autograd), biases non-zero
    model = trained_like(build(name, "small", seed=1), seed=1)
    x = clip(model, batch=2, samples=9000, frames=80)
    grads = []
    for fast in (True, False):
        model.fast = fast
        model.zero_grad()
        outs = model.extract_features(x)
        sum(o.square().mean() for o in outs).backward()
        grads.append([(n, p.grad.clone()) for n, p in model.named_parameters() if p.grad is not None])
    assert [n for n, _ in grads[0]] == [n for n, _ in grads[1]] and grads[0]
    for (n, g), (_, h) in zip(*grads):
        torch.testing.assert_close(g, h, rtol=1e-3, atol=1e-5 * h.abs().max().item() + 1e-8, msg=n)
