"""Issue 9, extraction side: every feature set is named by, and checked against, what made it.

Each test is one of the failures the issue reproduced (its number in the name), made again: write the
case, run the command, assert the right outcome.
"""
from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import REPO, interrupt_after_chunks, tone, write_audio, write_class_folders, write_tree
from audiodata import datasets
from toolkit import provenance
from features import store
from features import compute, extract as ex

# 1 s inputs (not the study's 29 s): the same code paths, a fraction of the time
SMALL = {"width": "small", "workers": 0, "batch_size": 2, "progress": False, "input_seconds": 1.0}


@pytest.fixture
def data(tmp_path):
    return write_class_folders(tmp_path / "data", per_class=3, seconds=0.5)


def _kw(tmp_path, root, **extra):
    return {"dataset": "folder", "root": root, "cache_dir": tmp_path / "cache", **SMALL, **extra}


def _npz(folder):
    return (folder / "features.npz").read_bytes()


def _meta(folder):
    return json.loads((folder / "meta.json").read_text())


def _sets(out, dataset="folder"):
    return sorted(p for p in (out / dataset).iterdir() if p.is_dir() and not p.name.endswith(".partial"))


def _count_batches(monkeypatch):
    seen = []
    real = compute._features_of_batch
    monkeypatch.setattr(compute, "_features_of_batch", lambda m, b, d, *p: seen.append(len(b)) or real(m, b, d, *p))
    return seen


# ----------------------------------------------------------------------------- 1, 2: one folder, one key

def test_1_runs_with_other_settings_never_replace_each_other(tmp_path, data):
    out = tmp_path / "fs"
    variants = [{}, {"pad": "zero"}, {"input_seconds": 0.25}, {"batchnorm": True}]
    folders = [ex.extract("sample-level", out=out, **_kw(tmp_path, data, **v)) for v in variants]
    assert len(set(folders)) == 4 and _sets(out) == sorted(folders)
    assert all(f.name.startswith("sample-level_small_random_seed0-") for f in folders)
    first = _npz(folders[0])
    # a set is exactly what a run of its settings alone gives, and the first was not replaced
    for i in (0, 3):
        alone = ex.extract("sample-level", out=tmp_path / f"alone{i}", **_kw(tmp_path, data, **variants[i]))
        assert _npz(folders[i]) == _npz(alone) and _meta(folders[i])["config_key"] == _meta(alone)["config_key"]
    assert _npz(folders[0]) == first and [_meta(f)["config"]["pad"] for f in folders[:2]] == ["repeat", "zero"]
    keys = {_meta(f)["config_key"] for f in folders}
    assert len(keys) == 4
    # a copy of the dataset elsewhere (another root) is another configuration too
    copy = shutil.copytree(data, tmp_path / "copy")
    moved = ex.extract("sample-level", out=out, **_kw(tmp_path, copy))
    assert moved not in folders and _npz(moved) == first


def test_2_interleaved_runs_of_two_configurations_keep_their_own_work(tmp_path, data, monkeypatch):
    """The second configuration runs entirely while the first is between chunks (the case that mixed
    clips of two configurations): each set equals a clean run of its own configuration."""
    out = tmp_path / "fs"
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)  # 6 clips -> 3 chunks of 2
    real = store.Chunks.save
    state = {"inside": False, "other": None}

    def save(self, c, *args, **kwargs):
        real(self, c, *args, **kwargs)
        if c == 0 and not state["inside"] and state["other"] is None:
            state["inside"] = True
            state["other"] = ex.extract("sample-level", out=out, **_kw(tmp_path, data, pad="zero"))
            state["inside"] = False

    monkeypatch.setattr(store.Chunks, "save", save)
    first = ex.extract("sample-level", out=out, **_kw(tmp_path, data))
    monkeypatch.setattr(store.Chunks, "save", real)
    ref_a = ex.extract("sample-level", out=tmp_path / "ra", **_kw(tmp_path, data))
    ref_b = ex.extract("sample-level", out=tmp_path / "rb", **_kw(tmp_path, data, pad="zero"))
    assert first != state["other"]
    assert _npz(first) == _npz(ref_a) and _npz(state["other"]) == _npz(ref_b)


def test_2_a_second_run_of_the_same_configuration_waits_for_the_first(tmp_path, data, capfd):
    out = tmp_path / "fs"
    done = ex.extract("mfcc", out=tmp_path / "ref", **_kw(tmp_path, data))
    folder = out / "folder" / done.name
    result = {}
    with store.lock(folder):  # another process of the same key is writing
        t = threading.Thread(target=lambda: result.setdefault(
            "path", ex.extract("mfcc", out=out, **_kw(tmp_path, data))))
        t.start()
        t.join(timeout=1.5)
        assert t.is_alive() and not (folder / "meta.json").exists()  # it waits, writing nothing
    t.join(timeout=60)
    assert result["path"] == folder and _npz(folder) == _npz(done)
    assert "another run of this same configuration is writing it; waiting" in capfd.readouterr().err


def _cli_cmd(*args, chunk_batches=1):
    code = ("import sys; from features import extract as ex; "
            f"ex.CHUNK_BATCHES = {chunk_batches}; sys.exit(ex.main(sys.argv[1:]))")
    return [sys.executable, "-c", code, *args]


def _env():
    return {"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}


def test_2_concurrent_processes_into_one_out(tmp_path, data):  # ~10 s on a quiet 2-core machine
    """Three processes at once into one --out: two of one configuration, one of another."""
    out = tmp_path / "fs"
    base = ["--arch", "sample-level", "--width", "small", "--dataset", "folder", "--root", str(data),
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "0",
            "--batch-size", "1", "--input-seconds", "0.25"]
    procs = [subprocess.Popen(_cli_cmd(*base, *extra), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for extra in ([], ["--pad", "zero"], [])]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1][-2000:] for r in results]
    paths = [r[0].strip().splitlines()[-1] for r in results]
    assert paths[0] == paths[2] != paths[1]
    kw = _kw(tmp_path, data, batch_size=1, input_seconds=0.25)
    ref = ex.extract("sample-level", out=tmp_path / "ra", **kw)
    ref_zero = ex.extract("sample-level", out=tmp_path / "rb", **{**kw, "pad": "zero"})
    assert _npz(out / "folder" / ref.name) == _npz(ref)
    assert _npz(out / "folder" / ref_zero.name) == _npz(ref_zero)
    assert len(_sets(out)) == 2 and not list((out / "folder").glob("*.partial"))


# ----------------------------------------------------------------------------- 3: verified reuse

def test_3_a_crash_between_features_and_meta_is_not_taken_for_done(tmp_path, data, monkeypatch, capfd):
    kw = _kw(tmp_path, data)
    ref = ex.extract("mfcc", out=tmp_path / "ref", **kw)
    real = store.atomic_write_json

    def crash(path, obj):
        if path.name == "meta.json":
            raise KeyboardInterrupt("killed between features.npz and meta.json")
        return real(path, obj)

    monkeypatch.setattr(provenance, "atomic_write_json", crash)  # the one feature-set writer (toolkit)
    with pytest.raises(KeyboardInterrupt):
        ex.extract("mfcc", out=tmp_path / "fs", **kw)
    monkeypatch.undo()
    folder = tmp_path / "fs" / "folder" / ref.name
    assert (folder / "features.npz").exists() and not (folder / "meta.json").exists()
    seen = _count_batches(monkeypatch)
    again = ex.extract("mfcc", out=tmp_path / "fs", **{**kw, "progress": True})
    err = capfd.readouterr().err
    assert "already extracted" not in err and "meta.json is missing" in err
    assert seen == []  # the chunks were kept: nothing computed again, only written
    assert _npz(again) == _npz(ref) and _meta(again)["features_sha256"] == provenance.sha256_file(again / "features.npz")


@pytest.mark.parametrize("damage", ["truncated", "other features", "meta is a list", "meta empty"])
def test_3_features_that_do_not_match_their_meta_are_recomputed(tmp_path, data, monkeypatch, capfd, damage):
    kw = _kw(tmp_path, data)
    folder = ex.extract("mfcc", out=tmp_path / "fs", **kw)
    good = _npz(folder)
    if damage == "truncated":
        (folder / "features.npz").write_bytes(good[: len(good) // 2])
    elif damage == "other features":
        # the MFCC baseline never pads its clip, so --pad changes nothing; a shorter crop does
        other = ex.extract("mfcc", out=tmp_path / "other", **_kw(tmp_path, data, input_seconds=0.25))
        assert _npz(other) != good
        shutil.copy(other / "features.npz", folder / "features.npz")
    elif damage == "meta is a list":
        (folder / "meta.json").write_text("[1, 2]")
    else:
        (folder / "meta.json").write_text("")
    seen = _count_batches(monkeypatch)
    again = ex.extract("mfcc", out=tmp_path / "fs", **{**kw, "progress": True})
    err = capfd.readouterr().err
    assert "recomputing" in err and "already extracted" not in err
    assert sum(seen) == 6 and again == folder and _npz(again) == good


# ----------------------------------------------------------------------------- 5: trained checkpoints

def _checkpoint(path, seed, fold, ids=True):
    from trained.checkpoint import save_checkpoint
    import architectures
    model = architectures.build("7x96", width="small", seed=seed)
    ckpt = {"arch": "7x96", "dims": model.dims, "state_dict": model.state_dict(), "backend_state_dict": {},
            "fold": fold, "dataset": "folder", "history": [], "epoch": 1, "optimizer_state_dict": {},
            "config": {"seed": seed, "width": "small", "folds": 3, "fold_seed": 7}}
    if ids:
        ckpt.update(seed=seed, width="small", folds=3, fold_seed=7, train_ids=["low/low1.wav", "high/high0.wav"],
                    val_ids=["low/low0.wav"], dataset_key="abc")
    return save_checkpoint(path, ckpt)


def test_5_checkpoints_of_several_seeds_get_their_own_sets_and_true_seeds(tmp_path, data, capsys):
    ckpts = [_checkpoint(tmp_path / f"s{s}.pt", s, 2) for s in (3, 5)]
    old = _checkpoint(tmp_path / "old.pt", 4, 1, ids=False)
    kw = _kw(tmp_path, data, width="large")  # the checkpoints' own width (small) wins
    paths = ex.extract_many(["7x96"], weights=[*ckpts, old], out=tmp_path / "fs", **kw)
    names = [p.name.rsplit("-", 1)[0] for p in paths]
    assert names == ["7x96_small_trained_seed3_fold2", "7x96_small_trained_seed5_fold2",
                     "7x96_small_trained_seed4_fold1"]
    for p, s, ck in zip(paths, (3, 5, 4), [*ckpts, old]):
        meta = _meta(p)
        assert meta["seed"] == meta["model_seed"] == s and meta["width"] == "small"
        assert meta["checkpoint_sha256"] == provenance.sha256_file(ck)
        # the random features of the same seed: the checkpoint's weights really were used
        rand = ex.extract("7x96", seed=s, out=tmp_path / "rand", **_kw(tmp_path, data))
        with np.load(p / "features.npz") as a, np.load(rand / "features.npz") as b:
            np.testing.assert_array_equal(a["X"], b["X"])
    m3 = _meta(paths[0])
    assert m3["model_train_ids"] == ["high/high0.wav", "low/low0.wav", "low/low1.wav"]
    assert (m3["model_fold"], m3["model_folds"], m3["model_fold_seed"]) == (2, 3, 7)
    assert _meta(paths[2])["model_train_ids"] is None and _meta(paths[2])["model_fold"] == 1
    assert _meta(paths[2])["model_folds"] == 3  # an old checkpoint: found in its config


# ----------------------------------------------------------------------------- 7, 8, 9: audio and cache

def test_7_a_replaced_audio_file_is_read_again_and_only_its_chunk_computed(tmp_path, monkeypatch, capfd):
    root = write_class_folders(tmp_path / "data", per_class=4, seconds=0.5)
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)  # 8 clips -> 4 chunks of 2
    kw = _kw(tmp_path, root)
    before = ex.extract("sample-level", out=tmp_path / "fs", **kw)
    target = root / "low" / "low2.wav"
    write_audio(target, tone(0.5, 16000, freq=300.0), sr=16000)  # repaired / re-encoded: new bytes
    seen = _count_batches(monkeypatch)
    after = ex.extract("sample-level", out=tmp_path / "fs", **{**kw, "progress": True})
    assert "unchanged since" in capfd.readouterr().err
    assert sum(seen) == 2  # one chunk of 2 clips: the one holding the changed file
    assert after != before and before.exists()  # the earlier set (of the earlier audio) is kept
    fresh = ex.extract("sample-level", out=tmp_path / "fresh", **kw)
    assert _npz(after) == _npz(fresh)
    meta = _meta(after)
    assert meta["reused"]["clips"] == 6 and meta["dataset_key"] == datasets.dataset_key(
        datasets.load_dataset("folder", root=root, folds=None))
    with np.load(before / "features.npz") as a, np.load(after / "features.npz") as b:
        i = list(b["ids"]).index("low/low2.wav")
        assert not np.allclose(a["X"][i], b["X"][i])
    # a new file is computed too: it shifts the clips after it, so their chunks are computed again
    write_audio(root / "low" / "low9.wav", tone(0.5, 16000, freq=500.0), sr=16000)
    seen.clear()
    added = ex.extract("sample-level", out=tmp_path / "fs", **kw)
    assert _meta(added)["n_clips"] == 9 and 0 < sum(seen) < 9
    assert _npz(added) == _npz(ex.extract("sample-level", out=tmp_path / "fresh2", **kw))


def test_7_batchnorm_never_reuses_rows(tmp_path, data, monkeypatch):
    kw = _kw(tmp_path, data, batchnorm=True)
    ex.extract("sample-level", out=tmp_path / "fs", **kw)
    write_audio(data / "low" / "low0.wav", tone(0.5, 16000, freq=300.0), sr=16000)
    seen = _count_batches(monkeypatch)
    after = ex.extract("sample-level", out=tmp_path / "fs", **kw)
    assert sum(seen) == 6 and "reused" not in _meta(after)


@pytest.mark.parametrize("arch", ["sample-level", "7x96"])
def test_8_damaged_cache_entries_are_recomputed_not_skipped(tmp_path, data, arch):
    kw = _kw(tmp_path, data)
    ref = ex.extract(arch, out=tmp_path / "ref", **kw)
    entries = sorted((tmp_path / "cache").rglob("*.np[yz]"))
    assert entries
    for i, f in enumerate(entries):  # zero bytes, cut short, or other bytes
        f.write_bytes([b"", f.read_bytes()[:40], b"garbage"][i % 3])
    fresh = ex.extract(arch, out=tmp_path / "fresh", **kw)
    meta = _meta(fresh)
    assert meta["n_clips"] == 6 and meta["skipped"] == [] and _npz(fresh) == _npz(ref)
    assert all(f.stat().st_size > 100 for f in entries)  # rewritten whole


def test_8_a_damaged_error_record_is_decoded_again(tmp_path, data):
    from audiodata import decode
    p = data / "low" / "low0.wav"
    key = decode.cache_key(p)
    err = tmp_path / "cache" / key[:2] / f"{key}.err.json"
    err.parent.mkdir(parents=True)
    err.write_text("")
    wave = decode.decode_cached(p, tmp_path / "cache")
    assert wave.size > 0 and not err.exists()


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_9_every_file_follows_the_umask(tmp_path, data, mask, file_mode, dir_mode):
    old = os.umask(mask)
    try:
        folder = ex.extract("7x96", out=tmp_path / "fs", **_kw(tmp_path, data))
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] + \
            [p for p in folder.parent.rglob("*") if p.is_file()]
    assert len(files) >= 6 + 6 + 2  # decoded audio, log-mel inputs, features.npz + meta.json
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(file_mode)}
    dirs = [p for p in (tmp_path / "cache").rglob("*") if p.is_dir()] + [folder]
    assert {oct(p.stat().st_mode & 0o777) for p in dirs} == {oct(dir_mode)}


# ----------------------------------------------------------------------------- 11, 12, 13

def test_11_a_failed_part_makes_the_command_fail_with_a_summary(tmp_path, data, capsys):
    rc = ex.main(["--arch", "hear:no_such_hear_module", "mfcc", "--width", "small", "--dataset", "folder",
                  "--root", str(data), "--out", str(tmp_path / "fs"), "--workers", "0",
                  "--cache-dir", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "mfcc_small_random_seed0-" in out.strip().splitlines()[-1]  # the path that was written
    summary = err[err.index("1 of 2 feature sets failed"):]
    assert "hear:no_such_hear_module seed 0: " in summary and "cannot import module" in summary
    assert "Traceback" not in err


def test_12_a_file_name_that_is_not_utf8_is_skipped_and_named(tmp_path, data, capsys):
    bad = os.path.join(os.fsencode(data / "low"), b"caf\xe9.wav")
    with open(bad, "wb") as f:
        f.write((data / "low" / "low0.wav").read_bytes())
    rc = ex.main(["--arch", "mfcc", "--width", "small", "--dataset", "folder", "--root", str(data),
                  "--out", str(tmp_path / "fs"), "--workers", "0", "--cache-dir", "none"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    meta = _meta(tmp_path / out.strip().splitlines()[-1])
    assert meta["n_clips"] == 6
    [skip] = meta["skipped"]
    assert "caf\\udce9.wav" in skip["path"] and "not valid UTF-8" in skip["reason"]
    assert "caf\\udce9.wav" in err and "Traceback" not in err


@pytest.mark.parametrize("per_class", [1, 4])
def test_13_a_manifest_without_folds_and_few_clips_is_extracted(tmp_path, per_class, capsys):
    rels = [f"{c}/{c}{i}.wav" for c in ("a", "b") for i in range(per_class)]
    write_tree(tmp_path / "d", rels, seconds=0.2)
    (tmp_path / "d" / "m.csv").write_text("path,label\n" + "".join(f"{r},{r[0]}\n" for r in rels))
    rc = ex.main(["--arch", "mfcc", "--width", "small", "--dataset", "csv", "--manifest",
                  str(tmp_path / "d" / "m.csv"), "--out", str(tmp_path / "fs"), "--workers", "0",
                  "--cache-dir", "none"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    folder = tmp_path / out.strip().splitlines()[-1]
    with np.load(folder / "features.npz") as z:
        assert z["X"].shape == (2 * per_class, 120) and set(z.files) == {"X", "y", "ids"}
    assert _meta(folder)["protocol_hint"] is None
    assert f"'a': {per_class}" in err and "warning" in err


def test_13_folds_are_not_extractions_business(tmp_path):
    with pytest.raises(SystemExit):
        ex.parse_args(["--folds", "3"])
    with pytest.raises(SystemExit):
        ex.parse_args(["--fold-seed", "1"])
    rels = [f"{c}/{c}{i}.wav" for c in ("a", "b") for i in range(4)]
    write_tree(tmp_path / "d", rels)
    # training still gets generated folds when it asks for them
    ds = datasets.load_dataset("folder", root=tmp_path / "d", folds=2, seed=1)
    assert ds.protocol_hint == "folds" and sorted({c.fold for c in ds.clips}) == [1, 2]
    assert datasets.load_dataset("folder", root=tmp_path / "d", folds=None).protocol_hint is None


# ----------------------------------------------------------------------------- 14: messages, not tracebacks

def _interrupted(tmp_path, data, monkeypatch, n=2):
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)  # 6 clips -> 3 chunks of 2
    interrupt_after_chunks(monkeypatch, n)
    with pytest.raises(KeyboardInterrupt):
        ex.extract("sample-level", out=tmp_path / "fs", **_kw(tmp_path, data))
    monkeypatch.undo()
    monkeypatch.setattr(ex, "CHUNK_BATCHES", 1)
    [partial] = (tmp_path / "fs" / "folder").glob("*.partial")
    return partial


@pytest.mark.parametrize("damage", ["garbage", "zero bytes", "foreign key", "empty config.json"])
def test_14_a_damaged_or_foreign_chunk_is_recomputed(tmp_path, data, monkeypatch, capfd, damage):
    partial = _interrupted(tmp_path, data, monkeypatch)
    chunk = partial / "chunk_000000.npz"
    if damage == "garbage":
        chunk.write_bytes(b"PK\x03\x04 not a zip at all")
    elif damage == "zero bytes":
        chunk.write_bytes(b"")
    elif damage == "foreign key":  # a chunk of another configuration, copied in
        with np.load(chunk) as z:
            arrays = {k: z[k] for k in z.files}
        provenance.atomic_save_npz(chunk, **{**arrays, "key": np.array("f" * 64), "X": arrays["X"] + 1})
    else:
        (partial / "config.json").write_text("")
    seen = _count_batches(monkeypatch)
    done = ex.extract("sample-level", out=tmp_path / "fs", **_kw(tmp_path, data))
    err = capfd.readouterr().err
    if damage == "empty config.json":
        assert sum(seen) == 2  # the two good chunks were used, only the third computed
    else:
        assert sum(seen) == 4 and "chunk_000000.npz: not used" in err
    ref = ex.extract("sample-level", out=tmp_path / "ref", **_kw(tmp_path, data))
    assert _npz(done) == _npz(ref) and "Traceback" not in err


def test_14_short_csv_rows_are_named(tmp_path, capsys):
    write_tree(tmp_path / "d", ["a/1.wav", "b/2.wav"])
    m = tmp_path / "d" / "m.csv"
    m.write_text("path,label,fold\na/1.wav,a,1\nb/2.wav,b\n")
    assert ex.main(["--arch", "mfcc", "--dataset", "csv", "--manifest", str(m), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"error: {m}: line 3: too few fields (['fold'] missing)" in err and "Traceback" not in err
    us = tmp_path / "us8k"
    write_tree(us / "audio" / "fold1", ["1-2-3-4.wav"])
    (us / "metadata").mkdir()
    (us / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n1-2-3-4.wav,1,0,1,1,1,3,dog_bark\n"
        "5-6-7-8.wav,5,0\n")
    assert ex.main(["--arch", "mfcc", "--dataset", "us8k", "--root", str(us), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "UrbanSound8K.csv: line 3: too few fields" in err and "Traceback" not in err


def test_14_out_that_is_a_file(tmp_path, data, capsys):
    f = tmp_path / "results.txt"
    f.write_text("not a folder")
    assert ex.main(["--arch", "mfcc", "--dataset", "folder", "--root", str(data), "--out", str(f),
                    "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert f"--out {f}: {f} is a file, expected a folder" in err and "Traceback" not in err
    assert f.read_text() == "not a folder"


def test_14_disk_full_leaves_nothing_trusted_and_resumes(tmp_path, data, monkeypatch, capsys):
    real = provenance._atomic

    def full(path, write):
        if path.name == "features.npz":
            def half(f):
                f.write(b"\0" * 1000)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(path, half)
        return real(path, write)

    monkeypatch.setattr(provenance, "_atomic", full)
    argv = ["--arch", "mfcc", "--width", "small", "--dataset", "folder", "--root", str(data), "--out",
            str(tmp_path / "fs"), "--workers", "0", "--cache-dir", str(tmp_path / "cache"),
            "--input-seconds", "1", "--batch-size", "2"]
    assert ex.main(argv) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "features.npz" in err and "disk is full" in err
    assert "Traceback" not in err
    [folder] = _sets(tmp_path / "fs")
    assert not (folder / "features.npz").exists() and not (folder / "meta.json").exists()
    assert not list(folder.glob(".*.tmp"))
    monkeypatch.undo()
    seen = _count_batches(monkeypatch)
    assert ex.main(argv) == 0
    assert seen == []  # the finished chunks were kept
    ref = ex.extract("mfcc", out=tmp_path / "ref", **_kw(tmp_path, data))
    assert _npz(folder) == _npz(ref)


def test_14_cache_that_cannot_be_written_costs_no_clip(tmp_path, data, monkeypatch):
    from audiodata import decode
    real = decode.atomic_write_bytes

    def full(path, data_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(decode, "atomic_write_bytes", full)
    decode._CACHE_WARNED.clear()
    with pytest.warns(RuntimeWarning, match="cannot be written"):
        folder = ex.extract("sample-level", out=tmp_path / "fs", **_kw(tmp_path, data))
    assert _meta(folder)["n_clips"] == 6 and _meta(folder)["skipped"] == []
    assert real is not full


# ----------------------------------------------------------------------------- names

def test_arch_strings_make_safe_folder_names():
    assert store.safe_name("my_pkg.mod:Net") == "my_pkg.mod-Net"
    assert store.safe_name("path/to/file.py:make") == "path-to-file.py-make"
    assert store.safe_name("../../etc") == "etc"
    assert "/" not in store.readable_name("a/b:c", "large", "random", 0)


def test_the_key_covers_a_front_ends_identity(tmp_path, data, monkeypatch):
    real = ex.build_frontend

    def with_identity(*a, **k):
        m = real(*a, **k)
        m.identity = {"spec": "my_pkg.mod:Net", "source_sha256": "1" * 64}
        return m

    a = ex.extract("mfcc", out=tmp_path / "fs", **_kw(tmp_path, data))
    monkeypatch.setattr(ex, "build_frontend", with_identity)
    b = ex.extract("mfcc", out=tmp_path / "fs", **_kw(tmp_path, data))
    assert a != b and _meta(b)["model_identity"]["spec"] == "my_pkg.mod:Net"


# ----------------------------------------------------------------------------- kill -9 and resume

def _chunk_files(out):
    return list(out.glob("folder/*.partial/chunk_*.npz"))


def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_bytes(tmp_path):  # ~14 s quiet
    # the large width on 3 s inputs: ~0.1-0.2 s a clip, so a kill after a chunk lands inside the run (at the
    # small width the 8 clips took 20 ms in all, and every kill found the run already finished)
    root = write_class_folders(tmp_path / "data", per_class=4, seconds=3.5)
    out = tmp_path / "fs"
    args = ["--arch", "sample-level", "--width", "large", "--dataset", "folder", "--root", str(root),
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "0",
            "--batch-size", "1", "--input-seconds", "3"]
    rng = random.Random(9)
    chunks_at_kill = []
    for k in range(3):
        p = subprocess.Popen(_cli_cmd(*args), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        if k == 0:  # anywhere, most likely while starting up
            time.sleep(rng.uniform(0.5, 3.0))
        else:  # once this process has saved a chunk of its own, at a random moment after that
            before = len(_chunk_files(out))
            deadline = time.monotonic() + 120
            while len(_chunk_files(out)) <= before and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait()
        chunks_at_kill.append(len(_chunk_files(out)))
    assert max(chunks_at_kill) >= 1, chunks_at_kill  # some work was interrupted, not only start-up
    r = subprocess.run(_cli_cmd(*args), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ref = ex.extract("sample-level", out=tmp_path / "ref", **_kw(tmp_path, root, batch_size=1, width="large",
                                                                  input_seconds=3.0))
    folder = tmp_path / r.stdout.strip().splitlines()[-1]
    assert folder.name == ref.name and _npz(folder) == _npz(ref)
    assert not list(folder.parent.glob("*.partial"))
