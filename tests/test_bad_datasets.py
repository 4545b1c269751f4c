"""Dataset walkers and text inputs on bad trees and files (issue 19): every candidate file that is not a
usable clip is in ``problems`` (extraction's ``skipped``) with its reason, labels come from the
documented layout, symlinked folders are followed once, and manifests / split lists are UTF-8 with or
without a BOM, naming file and line when they are not."""
from __future__ import annotations

import os
import socket
import stat

import pytest

from audiodata.datasets import load_dataset, read_text
from conftest import write_tree

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def _reasons(ds) -> dict:
    return {os.path.relpath(p["path"], ds.root): p["reason"] for p in ds.problems}


def _labels(ds) -> dict:
    return {c.id: c.label for c in ds.clips}


# ------------------------------------------------------------------------------------ folder layout

def test_nested_and_file_named_folders_take_the_top_level_label(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "low/album1/b.wav", "low/album1/cd2/c.wav", "high/x.wav/d.wav",
                          "high/e.wav"])
    ds = load_dataset("folder", tmp_path, folds=None)
    assert _labels(ds) == {"high/e.wav": "high", "high/x.wav/d.wav": "high", "low/a.wav": "low",
                           "low/album1/b.wav": "low", "low/album1/cd2/c.wav": "low"}
    assert ds.classes == ["high", "low"] and ds.problems == []


def test_dangling_symlink_is_skipped_with_its_reason(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "high/b.wav"])
    (tmp_path / "low" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    ds = load_dataset("folder", tmp_path, folds=None)
    assert "low/gone.wav" not in _labels(ds)
    assert "dangling symbolic link" in _reasons(ds)["low/gone.wav"]
    assert "nowhere.wav" in _reasons(ds)["low/gone.wav"]


def test_symlink_loops_are_skipped_with_their_reason(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "high/b.wav"])
    (tmp_path / "low" / "self.wav").symlink_to("self.wav")
    (tmp_path / "high" / "l1.wav").symlink_to("l2.wav")
    (tmp_path / "high" / "l2.wav").symlink_to("l1.wav")
    ds = load_dataset("folder", tmp_path, folds=None)
    reasons = _reasons(ds)
    assert sorted(_labels(ds)) == ["high/b.wav", "low/a.wav"]
    for rel in ("low/self.wav", "high/l1.wav", "high/l2.wav"):
        assert "symbolic link loop" in reasons[rel], reasons


def test_fifo_named_like_audio_is_skipped_not_opened(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "high/b.wav"])
    os.mkfifo(tmp_path / "low" / "pipe.wav")   # opening it would block: the walker must only stat it
    ds = load_dataset("folder", tmp_path, folds=None)
    assert _reasons(ds) == {"low/pipe.wav": "not a regular file: a FIFO (named pipe)"}


def test_socket_named_like_audio_is_skipped(tmp_path):
    write_tree(tmp_path, ["s/a.wav", "t/b.wav"])
    path = tmp_path / "s" / "sock.wav"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
    except OSError as e:   # a tmp path longer than AF_UNIX allows
        pytest.skip(f"cannot bind a unix socket here: {e}")
    try:
        ds = load_dataset("folder", tmp_path, folds=None)
    finally:
        sock.close()
    assert _reasons(ds) == {"s/sock.wav": "not a regular file: a socket"}


def test_symlinked_file_is_a_clip(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "high/b.wav"])
    (tmp_path / "high" / "alias.wav").symlink_to(tmp_path / "low" / "a.wav")
    ds = load_dataset("folder", tmp_path, folds=None)
    assert _labels(ds)["high/alias.wav"] == "high" and ds.problems == []


def test_symlinked_folder_outside_the_tree_is_followed(tmp_path):
    write_tree(tmp_path / "elsewhere", ["c1.wav", "deep/c2.wav"])
    root = tmp_path / "data"
    write_tree(root, ["low/a.wav"])
    (root / "high").symlink_to(tmp_path / "elsewhere")     # a whole class folder
    (root / "low" / "more").symlink_to(tmp_path / "elsewhere" / "deep")   # and a subfolder
    ds = load_dataset("folder", root, folds=None)
    assert _labels(ds) == {"high/c1.wav": "high", "high/deep/c2.wav": "high", "low/a.wav": "low"}
    # elsewhere/deep was reached through high/ first: the second link to it is named, not listed twice
    assert "already listed" in _reasons(ds)["low/more"]


def test_symlinked_folder_inside_the_tree_is_listed_once(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "high/b.wav", "high/c.wav"])
    (tmp_path / "low" / "alias").symlink_to(tmp_path / "high")     # a link to another class folder
    ds = load_dataset("folder", tmp_path, folds=None)
    assert _labels(ds) == {"high/b.wav": "high", "high/c.wav": "high", "low/a.wav": "low"}
    assert "already listed" in _reasons(ds)["low/alias"]


def test_symlinked_folder_loop_ends(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "high/b.wav"])
    (tmp_path / "low" / "up").symlink_to("..")          # low/up/low/up/... would never end
    (tmp_path / "high" / "me").symlink_to(".")
    ds = load_dataset("folder", tmp_path, folds=None)
    assert sorted(_labels(ds)) == ["high/b.wav", "low/a.wav"]
    assert set(_reasons(ds)) == {"low/up", "high/me"}


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    write_tree(tmp_path, ["low/a.wav", "low/locked.wav", "high/b.wav"])
    locked = tmp_path / "low" / "locked.wav"
    locked.chmod(0)
    if ROOT:   # root reads anything: make this one unreadable to the access check instead
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p) == str(locked) else real(p, m, **k))
    try:
        ds = load_dataset("folder", tmp_path, folds=None)
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert "low/locked.wav" not in _labels(ds)
    assert "permission denied" in _reasons(ds)["low/locked.wav"]


@pytest.mark.skipif(ROOT, reason="root can list any folder")
def test_unreadable_folder_is_named(tmp_path):
    write_tree(tmp_path, ["low/a.wav", "low/sub/x.wav", "high/b.wav"])
    (tmp_path / "low" / "sub").chmod(0)
    try:
        ds = load_dataset("folder", tmp_path, folds=None)
    finally:
        (tmp_path / "low" / "sub").chmod(0o755)
    assert "cannot be read" in _reasons(ds)["low/sub"]


def test_class_folder_datasets_follow_a_linked_class_once(tmp_path):
    base = tmp_path / "BallroomData"
    write_tree(base, ["Jive/j1.wav", "Rumba-American/r1.wav", "Samba/s1.wav"])
    (base / "Rumba-Misc").symlink_to(base / "Rumba-American")     # the same clips under two class names
    (base / "Samba" / "gone.wav").symlink_to(tmp_path / "nothing.wav")
    ds = load_dataset("ballroom", tmp_path, folds=None)
    assert _labels(ds) == {"Jive/j1.wav": "Jive", "Rumba-American/r1.wav": "Rumba", "Samba/s1.wav": "Samba"}
    reasons = _reasons(ds)
    assert "already listed" in reasons["Rumba-Misc"] and "dangling" in reasons["Samba/gone.wav"]


# ------------------------------------------------------------------------- files a list names

def test_manifest_entries_that_are_not_files_say_why(tmp_path):
    write_tree(tmp_path, ["a.wav", "b.wav"])
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "nothing.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "m.csv").write_text("path,label\na.wav,x\nb.wav,y\ndangling.wav,x\npipe.wav,y\ndir.wav,x\n"
                                    "gone.wav,y\n")
    ds = load_dataset("csv", manifest=tmp_path / "m.csv", folds=None)
    reasons = _reasons(ds)
    assert sorted(_labels(ds)) == ["a.wav", "b.wav"]
    assert "(line 4) but dangling symbolic link" in reasons["dangling.wav"]
    assert reasons["pipe.wav"].endswith("(line 5) but not a regular file: a FIFO (named pipe)")
    assert reasons["dir.wav"].endswith("(line 6) but a folder, not an audio file")
    assert reasons["gone.wav"].endswith("(line 7) but missing")


def _gtzan(tmp_path, lists: dict, encoding="utf-8"):
    genres = ["blues", "jazz"]
    write_tree(tmp_path / "genres", [f"{g}/{g}.0000{i}.wav" for g in genres for i in range(3)])
    split = tmp_path / "split"
    split.mkdir()
    for name, text in lists.items():
        (split / name).write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return split


def test_split_list_naming_a_dangling_link(tmp_path):
    split = _gtzan(tmp_path, {"train_filtered.txt": "blues/blues.00000.wav\njazz/jazz.00000.wav\n"
                                                    "blues/blues.00009.wav\n",
                              "valid_filtered.txt": "blues/blues.00001.wav\n",
                              "test_filtered.txt": "jazz/jazz.00001.wav\n"})
    (tmp_path / "genres" / "blues" / "blues.00009.wav").symlink_to(tmp_path / "gone.wav")
    ds = load_dataset("gtzan", tmp_path, split_dir=split)
    assert len(ds) == 4
    assert "listed in train_filtered.txt but dangling symbolic link" in _reasons(ds)["blues/blues.00009.wav"]


# -------------------------------------------------------------------------- text encodings

MANIFEST = "path,label\ncafé/a.wav,x\ncafé/b.wav,y\n"


@pytest.mark.parametrize("prefix,codec", [(b"", "utf-8"), (b"\xef\xbb\xbf", "utf-8")], ids=["utf8", "utf8-bom"])
def test_manifest_utf8_with_or_without_bom(tmp_path, prefix, codec):
    write_tree(tmp_path, ["café/a.wav", "café/b.wav"])
    (tmp_path / "m.csv").write_bytes(prefix + MANIFEST.encode(codec))
    ds = load_dataset("csv", manifest=tmp_path / "m.csv", folds=None)
    assert _labels(ds) == {"café/a.wav": "x", "café/b.wav": "y"}


def test_manifest_crlf_line_ends(tmp_path):
    write_tree(tmp_path, ["a.wav", "b.wav"])
    (tmp_path / "m.csv").write_bytes(b"path,label\r\na.wav,x\r\nb.wav,y\r\n")
    assert _labels(load_dataset("csv", manifest=tmp_path / "m.csv", folds=None)) == {"a.wav": "x", "b.wav": "y"}


def test_latin1_manifest_names_file_and_line(tmp_path):
    (tmp_path / "m.csv").write_bytes(MANIFEST.encode("latin-1"))
    with pytest.raises(ValueError) as e:
        load_dataset("csv", manifest=tmp_path / "m.csv", folds=None)
    msg = str(e.value)
    assert str(tmp_path / "m.csv") in msg and "line 2, column 4: byte 0xe9 is not UTF-8" in msg
    assert "iconv" in msg


def test_utf16_manifest_is_named(tmp_path):
    (tmp_path / "m.csv").write_bytes(MANIFEST.encode("utf-16"))   # Excel's "Unicode text"
    with pytest.raises(ValueError, match=r"m\.csv: a manifest is UTF-16.*expected UTF-8"):
        load_dataset("csv", manifest=tmp_path / "m.csv", folds=None)


def test_manifest_with_a_nul_byte_names_the_line(tmp_path):
    (tmp_path / "m.csv").write_bytes(b"path,label\na.wav,x\nb.w\x00av,y\n")
    with pytest.raises(ValueError, match=r"m\.csv: line 3: holds a NUL byte"):
        load_dataset("csv", manifest=tmp_path / "m.csv", folds=None)


def test_split_list_with_bom_reads_its_first_entry(tmp_path):
    lists = {"train_filtered.txt": "\ufeffblues/blues.00000.wav\njazz/jazz.00000.wav\n",
             "valid_filtered.txt": "\ufeffblues/blues.00001.wav\n",
             "test_filtered.txt": "jazz/jazz.00001.wav\r\n"}
    ds = load_dataset("gtzan", tmp_path, split_dir=_gtzan(tmp_path, lists))
    assert len(ds) == 4 and ds.problems == []   # not an unknown genre "\ufeffblues"


def test_latin1_split_list_names_file_and_line(tmp_path):
    lists = {"train_filtered.txt": "blues/blues.00000.wav\njazz/jazz.00000.wav\n",
             "valid_filtered.txt": "blues/blues.00001.wav\nblues/blues.0000é.wav\n",
             "test_filtered.txt": "jazz/jazz.00001.wav\n"}
    with pytest.raises(ValueError, match=r"valid_filtered\.txt: line 2, column 17: byte 0xe9 is not UTF-8"):
        load_dataset("gtzan", tmp_path, split_dir=_gtzan(tmp_path, lists, encoding="latin-1"))


def test_latin1_us8k_metadata_names_file_and_line(tmp_path):
    write_tree(tmp_path / "audio" / "fold1", ["a.wav"])
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_bytes(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\na.wav,1,0,1,1,1,0,sirène\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"UrbanSound8K\.csv: line 2, column \d+: byte 0xe8"):
        load_dataset("us8k", tmp_path)


def test_read_text_of_an_unreadable_input(tmp_path):
    with pytest.raises(ValueError, match=r"x\.csv: a manifest cannot be read"):
        read_text(tmp_path / "x.csv", "a manifest")


def test_extract_cli_latin1_manifest_one_message(tmp_path, capsys):
    from features.extract import main
    (tmp_path / "m.csv").write_bytes(MANIFEST.encode("latin-1"))
    assert main(["--dataset", "csv", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"),
                 "--cache-dir", "none"]) == 1
    err = capsys.readouterr().err
    # the start line (features.extract says what it does first), then the one error line
    lines = [ln for ln in err.splitlines() if not ln.startswith("extract: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "line 2, column 4" in lines[0]
    assert "Traceback" not in err
