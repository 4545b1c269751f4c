"""SampleCNN: Table 1 of Lee et al. 2017 (parameters and shapes) and the blocks of Kim et al."""
import pytest
import torch

from architectures.samplecnn import (BLOCKS, SEGMENT_SAMPLES, SMALL_CHANNELS, SampleCNN, SqueezeExcitation,
                                     default_weight_decay, plateau_patience)
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
    # every conv layer has batch norm, conv 1-512 included (Lee et al. 2017): 10 convs + the head
    channels = SampleCNN(50).dims["channels"]
    assert [r.name for r in bn][-1] == "bn_fc" and len(bn) == 11
    assert sum(r.params for r in bn) == 2 * (sum(channels) + channels[-1])
    text = format_summary(rows, basic)
    assert "1,863,986" in text and "batch norm 5,888" in text and "BatchNorm1d" in text


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


def test_conv_1_512_has_batch_norm_before_its_relu():
    m = SampleCNN(3, channels=SMALL_CHANNELS).eval()
    assert isinstance(m.bn_fc, torch.nn.BatchNorm1d) and m.bn_fc.num_features == SMALL_CHANNELS[-1]
    with torch.no_grad():  # give the head's BN non-trivial statistics, then recompute by hand
        m.bn_fc.running_mean.uniform_(-1, 1)
        m.bn_fc.running_var.uniform_(0.5, 2)
        m.bn_fc.weight.uniform_(0.5, 2)
        m.bn_fc.bias.uniform_(-1, 1)
        x = torch.randn(2, SEGMENT_SAMPLES)
        z = m.extract_features(x)[-1].amax(dim=2)
        h = torch.nn.functional.batch_norm(m.fc(z), m.bn_fc.running_mean, m.bn_fc.running_var,
                                           m.bn_fc.weight, m.bn_fc.bias, eps=m.bn_fc.eps)
        assert torch.allclose(m.logits(x), m.out(torch.relu(h)), atol=1e-6)
        without = SampleCNN(3, channels=SMALL_CHANNELS, head_batchnorm=False).eval()
        assert isinstance(without.bn_fc, torch.nn.Identity) and not without.dims["head_batchnorm"]
        state = {k: v for k, v in m.state_dict().items() if not k.startswith("bn_fc.")}
        without.load_state_dict(state)  # strict: the earlier model's weights still load
        assert torch.allclose(without.logits(x), m.out(torch.relu(m.fc(z))), atol=1e-6)


def test_schedule_patience_and_weight_decay_follow_the_papers():
    assert plateau_patience("basic") == 3  # Lee et al. 2017: "did not decrease more than 3 epochs"
    assert {plateau_patience(b) for b in BLOCKS if b != "basic"} == {2}  # Kim et al.: 2 epochs
    assert default_weight_decay("rese2") == 1e-4  # Kim et al. 2018 Table 1, dagger
    assert {default_weight_decay(b) for b in BLOCKS if b != "rese2"} == {0.0}


def test_published_block_scores_never_mix_alphas():
    from report.published import SAMPLECNN_PAPERS, SAMPLECNN_PUBLISHED, samplecnn_published
    icassp = samplecnn_published("se", 16, False)
    journal = samplecnn_published("se", 0.125, False)
    assert [(s.paper, s.alpha, s.roc_auc) for s in icassp] == [("kim2018", 16.0, 0.9083)]
    assert [(s.paper, s.alpha, s.roc_auc) for s in journal] == [("kim2019", 0.125, 0.9083)]
    assert [s.roc_auc for s in samplecnn_published("rese2", 16, True)] == [0.9113]
    assert samplecnn_published("rese2", 16, True)[0].weight_decay == 1e-4
    assert [s.roc_auc for s in samplecnn_published("rese2", 0.125, False)] == [0.9075]
    assert [s.roc_auc for s in samplecnn_published("se", 8, False)] == [0.9066]
    assert samplecnn_published("rese2", 0.125, True) == []  # the journal paper has no multi-level
    assert samplecnn_published("se", 0.5, False) == []
    # no SE, no alpha: both papers, each labelled
    assert {(s.paper, s.roc_auc) for s in samplecnn_published("res1", 0.125, False)} == \
        {("kim2018", 0.9048), ("kim2019", 0.9014)}
    for block, score in SAMPLECNN_PUBLISHED:  # every SE-block score carries its alpha, others none
        assert (score.alpha is not None) == (block in ("se", "rese1", "rese2"))
        assert score.paper in SAMPLECNN_PAPERS and 0.9 < score.roc_auc < 0.92
    assert len(SAMPLECNN_PUBLISHED) == 12 + 8  # Table 1 (2018): 6 x 2; Table III (2019): 8 rows
