"""SampleCNN: Table 1 of Lee et al. 2017 (parameters and shapes) and the blocks of Kim et al."""
import pytest
import torch

from trained.samplecnn import BLOCKS, SEGMENT_SAMPLES, SMALL_CHANNELS, SampleCNN, SqueezeExcitation
from trained.summary import format_summary, summarize

# Table 1 of Lee et al. 2017 (3^9 model, 50 tags): weights + bias of every conv / dense layer.
TABLE1_PARAMS = [512, 49280, 49280, 98560, 196864, 196864, 196864, 196864, 196864, 393728,
                 262656, 25650]
TABLE1_SHAPES = [(19683, 128), (6561, 128), (2187, 128), (729, 256), (243, 256), (81, 256),
                 (27, 256), (9, 256), (3, 256), (1, 512)]


@pytest.fixture(scope="module")
def basic():
    return SampleCNN(50, "basic")


def test_table1_parameter_counts(basic):
    rows = summarize(basic, torch.zeros(1, SEGMENT_SAMPLES))
    weighted = [r.params for r in rows if r.kind in ("Conv1d", "Linear")]
    assert weighted == TABLE1_PARAMS
    assert sum(weighted) == 1_863_986  # the paper's "1.9M"
    bn = [r for r in rows if r.kind == "BatchNorm1d"]
    assert len(bn) == 10 and sum(r.params for r in bn) == 2 * sum(SampleCNN(50).dims["channels"])
    text = format_summary(rows, basic)
    assert "1,863,986" in text and "batch norm 4,864" in text and "BatchNorm1d" in text


def test_table1_output_shapes(basic):
    with torch.no_grad():
        outs = basic.extract_features(torch.zeros(2, SEGMENT_SAMPLES))
    assert [(o.shape[2], o.shape[1]) for o in outs] == TABLE1_SHAPES
    assert all(o.shape[0] == 2 for o in outs)
    assert basic.feature_length == sum(c for _, c in TABLE1_SHAPES)


def _n(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("block,ratio", [("se", 1.09), ("res2", 2.20), ("rese2", 2.29)])
def test_block_parameter_ratios_match_taslp(block, ratio):
    # TASLP 2019 Table III (alpha = 2^-3): 1.09x / 2.20x / 2.29x the parameters of basic
    assert _n(SampleCNN(50, block, se_ratio=0.125)) / _n(SampleCNN(50, "basic")) == \
        pytest.approx(ratio, abs=0.006)


def test_res_blocks_add_one_shortcut_per_channel_change():
    m = SampleCNN(50, "res1")
    shortcuts = [b for b in m.blocks if isinstance(b.shortcut, torch.nn.Sequential)]
    assert len(shortcuts) == 2  # 128 -> 256 and 256 -> 512
    assert m.blocks[0].conv2 is None and SampleCNN(50, "res2").blocks[0].conv2 is not None


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_keeps_the_shapes(block):
    m = SampleCNN(7, block, channels=SMALL_CHANNELS).eval()
    x = torch.randn(3, SEGMENT_SAMPLES)
    with torch.no_grad():
        outs = m.extract_features(x)
        z = m.logits(x)
    assert [o.shape[2] for o in outs] == [t for t, _ in TABLE1_SHAPES]
    assert z.shape == (3, 7) and torch.isfinite(z).all()


def test_se_scales_each_channel_by_a_gate_in_0_1():
    se = SqueezeExcitation(16, 0.125)
    assert se.fc1.out_features == 2
    x = torch.rand(2, 16, 30) + 0.1
    y = se(x)
    gate = y / x
    assert torch.allclose(gate, gate[:, :, :1].expand_as(gate), atol=1e-6)  # one factor per channel
    assert ((gate > 0) & (gate < 1)).all()
    assert SqueezeExcitation(16, 16).fc1.out_features == 256  # the ICASSP 2018 amplifying ratio


def test_multi_level_concatenates_the_last_three_blocks():
    m = SampleCNN(5, "basic", multi_level=True)
    assert m.fc.in_features == 512 + 256 + 256
    s = SampleCNN(5, "basic", multi_level=True, channels=SMALL_CHANNELS).eval()
    with torch.no_grad():
        assert s.logits(torch.randn(2, SEGMENT_SAMPLES)).shape == (2, 5)


def test_longer_inputs_and_batching_agree():
    m = SampleCNN(4, "se", channels=SMALL_CHANNELS).eval()
    x = torch.randn(3, 2 * SEGMENT_SAMPLES)
    with torch.no_grad():
        batched = m.logits(x)
        single = torch.cat([m.logits(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_bad_inputs_are_named():
    m = SampleCNN(4, channels=SMALL_CHANNELS)
    with pytest.raises(ValueError, match="samples >= 59049"):
        m.logits(torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="found \\(59049,\\)"):
        m.logits(torch.zeros(SEGMENT_SAMPLES))
    with pytest.raises(ValueError, match="unknown SampleCNN block 'se3'; available: basic"):
        SampleCNN(4, "se3")
    with pytest.raises(ValueError, match="10 positive integers"):
        SampleCNN(4, channels=(8, 8))


def test_dims_rebuild_the_model():
    m = SampleCNN(9, "rese2", se_ratio=0.25, multi_level=True, channels=SMALL_CHANNELS)
    clone = SampleCNN(**m.dims)
    clone.load_state_dict(m.state_dict())  # strict: same layers, same shapes
    assert clone.dims == m.dims
