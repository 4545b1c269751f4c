"""The judge judged (report/judge.py, studies/judge.py): correlations with bootstrap intervals, the
verdict, the report section, search spaces, the study's flags."""
from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from scipy import stats

from conftest import REPO
from report import judge as J
from studies import judge as SJ

SPACE = REPO / "examples" / "space.py"


def _row(arch, classifier, protocol, weights, accs, ds="toy", width="small"):
    return {"dataset": ds, "arch": arch, "width": width, "weights": weights, "classifier": classifier,
            "protocol": protocol, "accuracies": list(accs), "seeds": list(range(len(accs))),
            "mean": float(np.mean(accs))}


def test_correlate_point_estimates_are_scipy_on_per_arch_means():
    trained = {f"a{i}": {0: 0.1 * i, 1: 0.1 * i + 0.02} for i in range(6)}
    judged = {f"a{i}": {0: v, 1: v + 0.5} for i, v in enumerate([3.0, 1.0, 2.0, 5.0, 4.0, 6.0])}
    r = J.correlate(judged, trained)
    x, y = np.array([3.5, 1.5, 2.5, 5.5, 4.5, 6.5]), np.array([0.1 * i + 0.01 for i in range(6)])
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert r["kendall"] == pytest.approx(stats.kendalltau(x, y)[0])
    assert r["n_archs"] == 6 and r["archs"] == sorted(trained)
    assert r["spearman_lo"] <= r["spearman"] <= r["spearman_hi"] and r["spearman_hi"] <= 1.0
    assert 0 < r["bootstrap_used"] <= J.BOOTSTRAP
    # a perfect ranking whose seeds never disagree: every replicate that varies gives rho = 1
    steady = {a: {0: 0.1 * i, 1: 0.1 * i} for i, a in enumerate(trained)}
    perfect = J.correlate({a: {0: float(i)} for i, a in enumerate(trained)}, steady)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["spearman_lo"] == pytest.approx(1.0)
    assert perfect["kendall_hi"] == pytest.approx(1.0)
    # too few architectures in common: none
    assert J.correlate({"a0": {0: 1.0}, "a1": {0: 2.0}, "zz": {0: 3.0}}, trained) is None


def test_bootstrap_interval_widens_with_seed_noise():
    rng = np.random.default_rng(1)
    trained = {f"a{i}": {s: 0.05 * i for s in range(3)} for i in range(8)}
    quiet = {a: {s: float(i) for s in range(3)} for i, a in enumerate(trained)}
    noisy = {a: {s: float(i) + 4 * rng.standard_normal() for s in range(3)} for i, a in enumerate(trained)}
    q, n = J.correlate(quiet, trained), J.correlate(noisy, trained)
    assert (n["spearman_hi"] - n["spearman_lo"]) > (q["spearman_hi"] - q["spearman_lo"])


def _tables(tmp_path, archs, proxy_values):
    """A proxies.csv + meta.json as studies.proxies writes them."""
    folder = tmp_path / "proxies" / "toy" / "all"
    folder.mkdir(parents=True)
    lines = ["dataset,arch,width,weights,seed,proxy,value,seconds,note"]
    for a in archs:
        for s in (0, 1):
            for proxy, f in proxy_values.items():
                v = f(a, s)
                lines.append(f"toy,{a},small,random,{s},{proxy},{'' if v is None else v},0.01,"
                             + ("" if v is not None else "not applicable: test"))
    data = ("\n".join(lines) + "\n").encode()
    (folder / "proxies.csv").write_bytes(data)
    (folder / "meta.json").write_text(json.dumps({"key": "k", "proxies_csv_sha256": hashlib.sha256(data).hexdigest()}))
    return tmp_path / "proxies"


def test_judge_blocks_verdict_table_figure_and_csv(tmp_path):
    archs = [f"net{i}" for i in range(5)]
    trained = [0.30, 0.45, 0.50, 0.70, 0.90]
    rows = [_row(a, "pons2018-backend", "end-to-end", "trained", [t, t + 0.01]) for a, t in zip(archs, trained)]
    rows += [_row(a, "svm", "split", "random", [t / 2, t / 2 + 0.02]) for a, t in zip(archs, trained)]  # ranks right
    rows += [_row(a, "knn", "split", "random", [1 - t, 1 - t]) for a, t in zip(archs, trained)]  # backwards
    rows.append(_row("mfcc", "svm", "split", "random", [0.5, 0.5]))  # no trained result: left out
    params = {"net0": 50, "net1": 10, "net2": 40, "net3": 20, "net4": 30}
    root = _tables(tmp_path, archs, {"params": lambda a, s: params[a],
                                     "naswot": lambda a, s: None})
    out = tmp_path / "report"
    out.mkdir()
    messages = []
    blocks = J.judge_blocks(rows, [root], out, messages)
    assert messages == []
    text = " ".join(str(b) for b in blocks)
    verdict = next(b[1] for b in blocks if b[0] == "p" and b[1].startswith("Verdict"))
    assert "`svm split` ranks the architectures best" in verdict and "beats `params`" in verdict
    table = next(b for b in blocks if b[0] == "table")
    names = [r[0] for r in table[2]]
    assert names[0] == "svm split" and names[-1] == "knn split" and "naswot" not in names  # n/a: no values
    assert table[2][0][3].startswith("+1.00") and table[2][-1][3].startswith("-1.00")
    img = next(b for b in blocks if b[0] == "img")
    assert (out / img[1]).stat().st_size > 1000
    got = {r["judgement"]: r for r in csv.DictReader(open(out / "judge.csv"))}
    assert set(got) == {"svm split", "knn split", "params"} and got["params"]["kind"] == "proxy"
    x = [params[a] for a in archs]
    assert float(got["params"]["spearman"]) == pytest.approx(stats.spearmanr(x, trained)[0])
    assert "mfcc" not in text
    # no trained result anywhere: no section, and an earlier judge.csv is removed
    assert J.judge_blocks([r for r in rows if r["weights"] == "random"], [root], out, messages) == []
    assert not (out / "judge.csv").exists()


def test_verdict_when_params_is_best():
    res = {"params": {"spearman": 0.9, "kendall": 0.8, "spearman_lo": 0.5, "spearman_hi": 1.0, "n_archs": 5},
           "synflow": {"spearman": 0.4, "kendall": 0.3, "spearman_lo": -0.2, "spearman_hi": 0.9, "n_archs": 5}}
    assert "it is `params` itself" in J._verdict("toy", "small", res)
    res["synflow"].update(spearman=0.97, spearman_lo=0.92, spearman_hi=1.0)
    assert "interval lying above it" in J._verdict("toy", "small", res)
    res["synflow"].update(spearman_lo=0.3)
    assert "not clearly" in J._verdict("toy", "small", res)


def test_space_has_24_members_of_both_inputs():
    members = SJ.expand_arch(f"space:{SPACE}")
    assert len(members) >= 24 and all(m.startswith(f"{SPACE}:") for m in members)
    from architectures.custom import CustomFrontend
    kinds = {CustomFrontend(m, width="small").input_kind for m in members[::5]}
    assert kinds == {"waveform", "spectrogram"}
    assert SJ.expand_arch("vgg") == ["vgg"]


def test_space_and_flag_errors(tmp_path, capsys):
    from studies.__main__ import main
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    for argv, needle in ((["--arch", f"space:{tmp_path / 'none.py'}"], "is not a file"),
                         (["--arch", f"space:{empty}"], "defines no SPACE"),
                         (["--arch", "vgg", "--proxies", "--proxy-batch", "1"], "--proxy-batch must be at least 2"),
                         (["--arch", "vgg", "--train", "--train-epochs", "0"], "--train-epochs must be at least 1")):
        with pytest.raises(SystemExit) as e:
            main(argv + ["--estimate-only"])
        assert e.value.code == 2 and needle in capsys.readouterr().err


def test_own_module_forward_feeds_the_backend():
    """trained.train and the proxies give the back-end a user's module's own forward (the space's pools time
    to <= 32 steps), not the last read-out layer (6000 steps here)."""
    import torch
    from architectures.backend import frontend_output
    from architectures.custom import CustomFrontend
    from trained.train import build_model
    spec = f"{SPACE}:wave_d2_f8_sample"
    fe = CustomFrontend(spec, width="small")
    x = torch.zeros(2, 18000)
    assert tuple(fe(x).shape) == (2, 8, 6000) and tuple(frontend_output(fe, x).shape) == (2, 8, 32)
    model, _, backend = build_model(spec, 3, width="small", seed=0, input_seconds=1.5, frontend_bn="none")
    assert backend.dims["in_channels"] == 8 and model.logits(x).shape == (2, 3)
