"""Zero-cost proxies (studies/proxies.py): each against a hand computation on a tiny network, synflow of
a study front-end against a float64 finite difference, "not applicable" cases, the keyed CSV."""
from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import REPO, write_class_folders
from studies import proxies as P


class Lin(nn.Module):
    """x (batch, d) -> W x (batch, k): one bias-free linear layer, input kind waveform."""
    input_kind = "waveform"

    def __init__(self, W):
        super().__init__()
        self.fc = nn.Linear(W.shape[1], W.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.as_tensor(W))

    def forward(self, x):
        return self.fc(x)


class TwoLayer(nn.Module):
    input_kind = "waveform"

    def __init__(self, W1, W2):
        super().__init__()
        self.a = nn.Linear(W1.shape[1], W1.shape[0], bias=False)
        self.b = nn.Linear(W2.shape[1], W2.shape[0], bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.as_tensor(W1))
            self.b.weight.copy_(torch.as_tensor(W2))

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


class ReluOnly(nn.Module):
    """Applies ReLU to its input twice over (module and function) so N_A counts both calls."""

    def __init__(self, twice=False):
        super().__init__()
        self.relu, self.twice = nn.ReLU(), twice

    def forward(self, x):
        h = self.relu(x)
        if self.twice:
            torch.relu(x - 0.5)
        return h


def test_naswot_kernel_on_three_clips_by_hand():
    x = torch.tensor([[1., -1., 2., 3.], [2., 5., -1., -2.], [-1., -3., 4., 1.]])
    # codes 1011, 1100, 0011: Hamming(1,2)=3, (1,3)=1, (2,3)=4; N_A=4
    K, n = P.naswot_kernel(ReluOnly(), x)
    assert n == 4
    np.testing.assert_array_equal(K, [[4, 1, 3], [1, 4, 0], [3, 0, 4]])
    value, note = P.naswot(P.Judged(ReluOnly(), nn.Identity()), x)
    assert note == "" and value == pytest.approx(math.log(24.0))  # det = 64 - 4 - 36
    # a second ReLU call adds its codes: x - 0.5 > 0 gives 1011, 1100, 0011 again -> K doubles
    K2, n2 = P.naswot_kernel(ReluOnly(twice=True), x)
    assert n2 == 8 and np.array_equal(K2, 2 * K)


def test_naswot_not_applicable_without_relu():
    net = P.Judged(nn.Sequential(nn.Linear(4, 3), nn.ELU()), nn.Identity())
    value, note = P.naswot(net, torch.randn(3, 4))
    assert value is None and note.startswith("not applicable") and "ReLU" in note


def test_synflow_two_layer_float64_by_hand():
    W1 = np.array([[0.5, -1.0, 2.0], [-0.25, 0.75, -1.5]])
    W2 = np.array([[1.0, -2.0], [0.5, 3.0]])
    net = P.Judged(TwoLayer(W1, W2), nn.Identity())
    A1, A2 = np.abs(W1), np.abs(W2)
    R = np.ones(2) @ A2 @ A1 @ np.ones(3)
    # dR/dW1[i,j] = colsum(A2)[i]; dR/dW2[k,i] = (A1 1)[i]: each layer's sum |W dR/dW| equals R
    by_hand = (A1 * (np.ones(2) @ A2)[:, None]).sum() + (A2 * (A1 @ np.ones(3))[None, :]).sum()
    assert by_hand == pytest.approx(2 * R)
    value, _ = P.synflow(net, torch.zeros(5, 3))
    assert value == pytest.approx(by_hand, rel=1e-12)
    assert net.frontend.a.weight.dtype == torch.float32 and net.frontend.a.weight[0, 1] < 0  # untouched


def _softmax_grad(logits, y):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p / len(y)  # dL/dlogits of the mean cross-entropy


W = np.array([[0.3, -0.7], [1.1, 0.2], [-0.4, 0.9]])
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0], [2.0, 1.0]])
Y = np.array([0, 2, 1, 2])


def _lin():
    return P.Judged(Lin(W), nn.Identity()), torch.tensor(X, dtype=torch.float32), torch.tensor(Y)


def test_snip_grad_norm_fisher_by_hand():
    A = X @ W.T
    G = _softmax_grad(A, Y)  # dL/da per clip
    dW = G.T @ X
    net, x, y = _lin()
    assert P.snip(net, x, y)[0] == pytest.approx(np.abs(W * dW).sum(), rel=1e-5)
    assert P.grad_norm(net, x, y)[0] == pytest.approx(np.linalg.norm(dW), rel=1e-5)
    assert P.fisher(net, x, y)[0] == pytest.approx((0.5 * ((A * G) ** 2).mean(axis=0)).sum(), rel=1e-4)


def test_jacob_cov_by_hand():
    # f(x) = W x, y.backward(ones): each clip's input Jacobian is 1'W, all rows equal, corrcoef = ones(4, 4)
    net, x, y = _lin()
    v = np.array([4.0, 0.0, 0.0, 0.0])
    expected = -np.sum(np.log(v + P.JACOB_K) + 1 / (v + P.JACOB_K))
    assert P.jacob_cov(net, x, y)[0] == pytest.approx(expected, rel=1e-6)
    # two-layer ReLU net: Jacobians differ per clip; against numpy on the masks
    W1, W2 = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.3]]), np.array([[1.0, 2.0, -1.0]])
    X2 = np.array([[1.0, 0.2], [-0.5, 1.0], [0.3, -2.0], [2.0, 1.5]])
    J = np.stack([(W2 * (W1 @ xi > 0)) @ W1 for xi in X2]).reshape(4, -1)
    vv = np.linalg.eigvalsh(np.corrcoef(J))
    got = P.jacob_cov(P.Judged(TwoLayer(W1, W2), nn.Identity()), torch.tensor(X2, dtype=torch.float32))[0]
    assert got == pytest.approx(-np.sum(np.log(vv + P.JACOB_K) + 1 / (vv + P.JACOB_K)), rel=1e-4)


def test_zico_by_hand():
    net, x, y = _lin()
    g = []
    for lo, hi in ((0, 2), (2, 4)):
        A = X[lo:hi] @ W.T
        g.append((_softmax_grad(A, Y[lo:hi]).T @ X[lo:hi]).ravel())
    g = np.array(g)
    std, mean = g.std(axis=0), np.abs(g).mean(axis=0)
    expected = math.log((mean[std != 0] / std[std != 0]).sum())
    assert P.zico(net, x, y)[0] == pytest.approx(expected, rel=1e-4)
    assert P.zico(net, x[:1], y[:1])[0] is None


def test_score_network_mfcc_and_failures():
    import architectures
    rows = P.score_network(architectures.build("mfcc"), None, None, 3, 0)
    assert [r["proxy"] for r in rows] == list(P.PROXIES)
    assert rows[0]["value"] == 0.0 and all(r["value"] is None and "not applicable" in r["note"] for r in rows[1:])


def test_synflow_of_a_study_frontend_matches_float64_finite_difference():
    """sum_l W_l . dR/dW_l = dR/dt of R(W_l * t) at t=1, summed over the front-end's layers: a central
    difference of the abs'd float64 network (R is piecewise linear in t: all activations positive)."""
    import architectures
    from architectures.backend import PonsBackend, init_he_normal
    fe = architectures.build("sample-level", width="small", seed=0, fast=False)
    n = 3 ** 8 * 2
    x = torch.zeros(2, n)
    with torch.no_grad():
        channels = fe(x[:1]).shape[1]
    net = P.Judged(fe, init_he_normal(PonsBackend(channels, 4, batchnorm=False), 0)).eval()
    got, _ = P.synflow(net, x)
    shadow = copy.deepcopy(net).double()
    with torch.no_grad():
        for t in shadow.state_dict().values():
            t.abs_()
        ones = torch.ones(1, n, dtype=torch.float64)
        h, fd = 1e-4, 0.0
        for m in shadow.scored():
            w = m.weight.clone()
            m.weight.copy_(w * (1 + h))
            up = float(shadow(ones).sum())
            m.weight.copy_(w * (1 - h))
            down = float(shadow(ones).sum())
            m.weight.copy_(w)
            fd += (up - down) / (2 * h)
    assert got > 0 and abs(got - fd) / fd < 1e-6, (got, fd)


@pytest.fixture
def data(tmp_path):
    return write_class_folders(tmp_path / "data", per_class=4)


def test_run_proxies_writes_keyed_csv_and_keeps_current(tmp_path, data, capsys):
    spec = str(REPO / "examples" / "waveform_cnn.py") + ":WaveformCNN"
    st = P.ProxySettings(dataset="folder", root=str(data), width="small", seeds=(0, 1), batch=4,
                         input_seconds=1.0, folds=2, workers=0, cache_dir=str(tmp_path / "cache"),
                         out=str(tmp_path / "runs" / "proxies"))
    path = P.run_proxies(spec, st, log=lambda m: None)
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == P.CSV_FIELDS
    assert [(int(r["seed"]), r["proxy"]) for r in rows] == [(s, p) for s in (0, 1) for p in P.PROXIES]
    assert all(r["value"] != "" and math.isfinite(float(r["value"])) for r in rows), rows
    assert rows[0]["dataset"] == "folder" and rows[0]["width"] == "small" and rows[0]["weights"] == "random"
    by_seed = {(int(r["seed"]), r["proxy"]): float(r["value"]) for r in rows}
    assert by_seed[0, "synflow"] != by_seed[1, "synflow"] and by_seed[0, "params"] == by_seed[1, "params"]
    stamp = path.stat().st_mtime_ns
    msgs = []
    assert P.run_proxies(spec, st, log=msgs.append) == path and path.stat().st_mtime_ns == stamp
    assert "current, kept" in msgs[0]
    # other settings: another folder, the first one untouched
    other = P.run_proxies(spec, P.ProxySettings(**{**st.__dict__, "batch": 3}), log=lambda m: None)
    assert other.parent != path.parent and path.stat().st_mtime_ns == stamp
    # the newest table of one front-end and width is the one read; an edited one is skipped, with a message
    from report.judge import read_proxies
    msgs = []
    assert {r["file"] for r in read_proxies([tmp_path / "runs" / "proxies"], msgs)} == {str(other)}
    assert len(msgs) == 1 and "older proxies table" in msgs[0]
    other.write_text(other.read_text() + "folder,x,small,random,0,params,1.0,0.0,\n")  # edited
    msgs = []
    got = read_proxies([tmp_path / "runs" / "proxies"], msgs)
    assert {r["file"] for r in got} == {str(path)} and any("checksum differs" in m for m in msgs)
    assert [(r["seed"], r["proxy"], r["value"]) for r in got] == \
        [(int(r["seed"]), r["proxy"], float(r["value"])) for r in rows]
    P.run_proxies(spec, P.ProxySettings(**{**st.__dict__, "batch": 3}), log=lambda m: None)
    assert {r["file"] for r in read_proxies([tmp_path / "runs" / "proxies"])} == {str(other)}  # written again


def test_cli_bad_values(capsys, tmp_path):
    (tmp_path / "afile").write_text("mine")
    for argv, needle in ((["--out", str(tmp_path / "afile")], "afile is an existing file; expected a folder"),
                         (["--proxy-batch", "1"], "--proxy-batch must be at least 2"),
                         (["--arch", "nope"], "unknown architecture 'nope'"),
                         (["--proxies", "zen"], "invalid choice: 'zen'"),
                         (["--input-seconds", "0"], "--input-seconds must be a positive")):
        with pytest.raises(SystemExit) as e:
            P.main(argv)
        assert e.value.code == 2 and needle in capsys.readouterr().err
