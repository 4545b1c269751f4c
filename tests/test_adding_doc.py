"""docs/adding.md, followed literally for a front-end: one new module plus one FRONTENDS row, and the
table-driven tests the doc names pick it up (issue 18: following the doc used to fail two tests)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO

MY_NET = textwrap.dedent('''
    """A two-conv waveform front-end written the way docs/adding.md says (the test's example)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from architectures.base import StudyFrontEnd
    from architectures.init import init_weights, keeps_global_rng
    from architectures.layers import check_input, norm_layer


    class MyNet(StudyFrontEnd):
        input_kind = "waveform"

        @keeps_global_rng
        def __init__(self, filters=64, seed=0, batchnorm=False, fast=True):
            super().__init__()
            self.store_common(filters, seed, batchnorm, fast)
            self.conv1 = nn.Conv1d(1, self.filters, 9, stride=3)
            self.norm1 = norm_layer(self.filters, 1, batchnorm)
            self.conv2 = nn.Conv1d(self.filters, self.filters, 3)
            self.norm2 = norm_layer(self.filters, 1, batchnorm)
            self.layers = [("c1", self.filters), ("c2", self.filters)]
            self.feature_length = 2 * self.filters
            init_weights(self, seed)

        def extract_features(self, x):
            check_input(x, self.input_kind, "my-net", min_length=9 + 2 * 3)
            h1 = F.relu(self.norm1(self.conv1(x[:, None, :])))
            h2 = F.relu(self.norm2(self.conv2(h1)))
            return [h1, h2]

        def forward(self, x):
            return self.extract_features(x)[-1]
''')

# the one table row of step 2; added before pytest collects, as if it were in architectures/__init__.py
PLUGIN = textwrap.dedent('''
    import architectures
    from architectures import FRONTENDS, WIDTHS, FrontEnd
    architectures.__path__.append({ext!r})  # architectures/my_net.py, without writing into the checkout
    FRONTENDS["my-net"] = FrontEnd("my-net", "my_net:MyNet", {{"large": {{"filters": 512}},
                                   "small": {{"filters": 16}}}}, "waveform", "Me et al. 2026")
    WIDTHS["my-net"] = FRONTENDS["my-net"].widths
''')


def test_a_new_front_end_is_one_module_and_one_row(tmp_path):
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "my_net.py").write_text(MY_NET)
    (tmp_path / "doc_row.py").write_text(PLUGIN.format(ext=str(ext)))
    # the doc's own check: pytest tests/test_registry.py tests/test_architectures.py -k my-net
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "doc_row", "-p", "no:cacheprovider",
           "tests/test_registry.py", "tests/test_architectures.py", "-k", "my-net"]
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    passed = int(run.stdout.rsplit(" passed", 1)[0].split()[-1])
    assert passed >= 10, tail  # the registry rows, lengths, shapes, init, fast vs plain ... ran for my-net
    assert " failed" not in run.stdout
    # and the CLI takes it: features.extract's --arch choices come from the same row
    probe = subprocess.run([sys.executable, "-c", "import doc_row, architectures; "
                            "m = architectures.build('my-net', 'small'); print(m.feature_length)"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "32", probe.stderr
