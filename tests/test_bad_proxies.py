"""The proxies' batch (issue 19): a clip too short for the front-end is skipped with the reason (the
rule extraction uses), recorded in meta.json's skipped and said; the other clips are scored."""
from __future__ import annotations

import json
import math

import csv

from conftest import tone, write_audio, write_class_folders
from studies import proxies as P


def test_too_short_batch_clips_are_skipped_and_said(tmp_path):
    root = write_class_folders(tmp_path / "data", per_class=4)
    for label in ("low", "high"):
        for i in range(3):
            write_audio(root / label / f"short{i}.wav", tone(100 / 12000, 12000), sr=12000)
    st = P.ProxySettings(dataset="folder", root=str(root), width="small", seeds=(0,), batch=64,
                         proxies=("naswot",), input_seconds=1.0, folds=2, workers=0, cache_dir=None, out=str(tmp_path / "runs"))
    msgs = []
    path = P.run_proxies("frame-level", st, log=msgs.append)
    meta = json.loads((path.parent / "meta.json").read_text())
    short = [b for b in meta["batch_ids"] if "short" in b]
    assert short, meta["batch_ids"]          # the batch holds some of the short clips
    assert {s["id"] for s in meta["skipped"]} == set(short)
    assert all(s["reason"].startswith("too short: 100 samples (8.3 ms at 12000 Hz) after decoding; "
                                      "frame-level (the receptive field of its first convolution, 512 samples)")
               for s in meta["skipped"])
    n = len(meta["batch_ids"])
    said = [m for m in msgs if "skipped (in meta.json)" in m]
    assert said == [f"frame-level: scored on {n - len(short)} of {n} batch clips; skipped (in meta.json): "
                    + "; ".join(f"{s['id']}: {s['reason']}" for s in meta["skipped"][:5])
                    + (" ..." if len(short) > 5 else "")]
    rows = list(csv.DictReader(open(path)))
    assert rows and all(math.isfinite(float(r["value"])) for r in rows)
