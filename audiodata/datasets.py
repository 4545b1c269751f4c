"""Dataset layouts as distributed: which clips, their labels, and their split or fold.

Nothing here decodes audio (``audiodata/audio.py`` does, and a clip that fails there is skipped by the
extractor); this module only reads folder trees, split lists and metadata, so listing even the
8732 UrbanSound8K clips takes well under a second. Clips are sorted by ``id`` (the path relative to
``Dataset.root``, with ``/``), so every architecture sees the same order.

Layouts relied on (as shipped by their authors):

- GTZAN (Tzanetakis & Cook 2002): ``genres/<genre>/<genre>.000NN.au``, 10 genres x 100; the Kaggle
  copy has ``Data/genres_original/<genre>/<genre>.000NN.wav``. The fault-filtered split of Kereliuk
  et al. / Lee et al. (jongpillee/music_dataset_split) lists ``blues/blues.00029.wav`` lines in
  ``train_filtered.txt``, ``valid_filtered.txt``, ``test_filtered.txt`` (443 / 197 / 290).
- Ballroom (ISMIR 2004 tempo contest, ``BallroomData/``): folders ChaChaCha, Jive, Quickstep,
  Rumba-American, Rumba-International, Rumba-Misc, Samba, Tango, VienneseWaltz, Waltz; the three
  Rumba folders form one class, giving the usual 8.
- Extended Ballroom (Marchand & Peeters 2016): 13 folders of mp3s, Chacha, Foxtrot, Jive, Pasodoble,
  Quickstep, Rumba, Salsa, Samba, Slowwaltz, Tango, Viennesewaltz, Waltz, Wcswing.
- UrbanSound8K (Salamon et al. 2014): ``audio/fold1..fold10/*.wav`` and
  ``metadata/UrbanSound8K.csv`` (slice_file_name, fsID, start, end, salience, fold, classID, class).
"""
from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from toolkit.provenance import file_stamp

__all__ = ["stratified_folds", "dataset_key", "AUDIO_EXTENSIONS", "GTZAN_GENRES", "BALLROOM_FOLDERS", "EXTENDED_BALLROOM_CLASSES",
           "SPLIT_FILES", "Clip", "Dataset", "DATASETS", "load_dataset"]

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".mp3", ".flac", ".ogg", ".aif", ".aiff")
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
BALLROOM_FOLDERS = {"ChaChaCha": "ChaChaCha", "Jive": "Jive", "Quickstep": "Quickstep",
                    "Rumba-American": "Rumba", "Rumba-International": "Rumba", "Rumba-Misc": "Rumba",
                    "Rumba": "Rumba", "Samba": "Samba", "Tango": "Tango",
                    "VienneseWaltz": "VienneseWaltz", "Waltz": "Waltz"}
EXTENDED_BALLROOM_CLASSES = ("Chacha", "Foxtrot", "Jive", "Pasodoble", "Quickstep", "Rumba", "Salsa",
                             "Samba", "Slowwaltz", "Tango", "Viennesewaltz", "Waltz", "Wcswing")
SPLIT_FILES = {"train": "train_filtered.txt", "val": "valid_filtered.txt", "test": "test_filtered.txt"}
US8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
DEFAULT_SYNTHETIC_ROOT = Path("runs") / "data" / "synthetic"

LAYOUTS = {
    "gtzan": "<root>/genres/<genre>/<genre>.000NN.au|wav (or <root> = genres/, or the Kaggle "
             "Data/genres_original/) with the 10 genres " + ", ".join(GTZAN_GENRES),
    "ballroom": "<root>/BallroomData/<class>/*.wav (or <root> = BallroomData/) with the folders "
                + ", ".join(BALLROOM_FOLDERS),
    "extended-ballroom": "<root>/<class>/*.mp3 with the 13 folders " + ", ".join(EXTENDED_BALLROOM_CLASSES),
    "us8k": "<root>/audio/fold1..fold10/*.wav and <root>/metadata/UrbanSound8K.csv",
    "folder": "<root>/<class>/**/<audio file>: the class is the top-level folder under <root> (files in "
              "subfolders such as <class>/album1/ belong to <class>)",
    "csv": "a manifest CSV with a header and columns path, label (or tags: a multi-label dataset, the "
           "clip's tags separated by ';') and optionally split (train/val/test) or fold (1..K); paths "
           "relative to the manifest's folder",
    "synthetic": f"generated on first use under {DEFAULT_SYNTHETIC_ROOT} (audiodata/synthetic.py)",
}


@dataclass(frozen=True)
class Clip:
    """One audio file: ``id`` is its path relative to the dataset root, with ``/``."""
    path: Path
    id: str
    label: str
    split: str | None = None
    fold: int | None = None
    sha256: str | None = None   # the file's content hash, with ``load_dataset(verify_audio="content")``
    tags: tuple | None = None   # a multi-label manifest's tags (sorted); ``label`` is them joined by TAG_SEP


@dataclass
class Dataset:
    """The clips of a dataset and how to evaluate on them.

    ``protocol_hint`` is ``"split"`` (every clip has ``split`` in train/val/test) or ``"folds"``
    (every clip has ``fold`` in 1..K). ``problems`` lists ``{"path", "reason"}`` for entries that
    could not be used (a listed file that is missing, an unknown label, ...). ``info`` records how
    the split or folds were made (e.g. the seed of the stratified folds).
    """
    name: str
    root: Path
    clips: list[Clip]
    classes: list[str]
    protocol_hint: str
    problems: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def ids(self) -> np.ndarray:
        return np.array([c.id for c in self.clips], dtype=str)

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=str)


# ---------------------------------------------------------------------------------------------
# shared helpers

def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _is_audio_name(name: str) -> bool:
    # Hidden files include macOS "._name.wav" resource forks, which some archives carry.
    return Path(name).suffix.lower() in AUDIO_EXTENSIONS and not name.startswith(".")


def _utf8_name(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
        return False
    return True


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _not_regular(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _link_problem(path: Path) -> str | None:
    """Why the symbolic link ``path`` leads nowhere usable (dangling, a loop), or None when it resolves."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"dangling symbolic link: its target {os.readlink(path)!r} does not exist"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"symbolic link loop (it points to {os.readlink(path)!r}, which never reaches a file)"
        return f"symbolic link cannot be followed ({e.strerror})"
    return None


def _file_problem(path: Path) -> str | None:
    """Why a file named by a manifest, split list or metadata is not a usable clip, or None."""
    if os.path.islink(path):
        why = _link_problem(path)
        if why is not None:
            return why
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file: {_not_regular(st.st_mode)}"
    if not os.access(path, os.R_OK):
        return "unreadable: permission denied (make it readable and run the same command again)"
    return None


class _Walk:
    """One walk over a dataset tree: every real folder is listed once (symlinked folders are followed
    when they lead to a folder not otherwise in the tree), and every candidate audio file that is not a
    usable clip goes to ``problems`` with its reason, so nothing disappears without a word."""

    def __init__(self, top: Path, problems: list | None):
        self.problems = problems if problems is not None else []
        self.seen = set()
        self.real = set()   # (st_dev, st_ino) of the folders reached without following a link
        for d, subdirs, _ in os.walk(top, followlinks=False):
            subdirs[:] = [x for x in subdirs if not x.startswith(".")]
            try:
                st = os.stat(d)
            except OSError:
                continue
            self.real.add((st.st_dev, st.st_ino))

    def problem(self, path, reason: str) -> None:
        shown = str(path) if _utf8_name(Path(path)) else repr(str(path))
        self.problems.append({"path": shown, "reason": reason})

    def files(self, folder: Path, via_link: bool = False) -> list[Path]:
        try:
            st = os.stat(folder)
        except OSError as e:
            self.problem(folder, f"folder cannot be read ({e.strerror}); its files are not listed")
            return []
        ident = (st.st_dev, st.st_ino)
        if ident in self.seen or (via_link and ident in self.real):
            if via_link:
                self.problem(folder, f"symbolic link to a folder already listed ({os.path.realpath(folder)}): "
                                     "its files are listed once, under their own path")
            return []
        self.seen.add(ident)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            self.problem(folder, f"folder cannot be read ({e.strerror}); its files are not listed")
            return []
        out = []
        for e in entries:
            if e.name.startswith("."):
                continue
            path = Path(e.path)
            if e.is_symlink():
                why = _link_problem(path)
                if why is not None:
                    if _is_audio_name(e.name):
                        self.problem(path, why)
                    continue
            try:
                mode = os.stat(path).st_mode
            except OSError as err:
                if _is_audio_name(e.name):
                    self.problem(path, f"cannot be read ({err.strerror})")
                continue
            if stat.S_ISDIR(mode):   # a folder, even one named like a file (x.wav/), holds clips
                out += self.files(path, via_link=e.is_symlink())
                continue
            if not _is_audio_name(e.name):
                continue
            if not _utf8_name(path):
                self.problem(path, "file name is not valid UTF-8; skipped (rename it, e.g. with convmv, "
                                   "to include it)")
            elif not stat.S_ISREG(mode):
                self.problem(path, f"not a regular file: {_not_regular(mode)}")
            elif not os.access(path, os.R_OK):
                self.problem(path, "unreadable: permission denied (make it readable, e.g. chmod a+r, and "
                                   "run the same command again)")
            else:
                out.append(path)
        return out


def _audio_files(folder: Path, problems: list | None = None, walk: _Walk | None = None,
                 via_link: bool = False) -> list[Path]:
    """Audio files under ``folder`` (any depth), sorted. Not clips, each named in ``problems`` with the
    reason: dangling symbolic links, link loops, FIFOs / sockets / devices named like audio, unreadable
    files, names that are not valid UTF-8 (ids are written to JSON and NumPy text arrays). A symbolic
    link to a folder is followed once; a folder named like a file (``x.wav/``) is a folder.
    ``walk`` shares one record of listed folders between calls over the same tree."""
    walk = walk if walk is not None else _Walk(folder, problems)
    return sorted(walk.files(folder, via_link=via_link))


def read_text(path, what: str) -> str:
    """A text input (manifest, split list, metadata) decoded as UTF-8, with or without a BOM.

    Raises ``ValueError`` naming the file, and the line and column of the first byte that is not
    UTF-8 (a Latin-1 or Windows-1252 export), or saying it is UTF-16; and for a file that cannot be read.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: {what} cannot be read ({e.strerror or e})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError(f"{path}: {what} is UTF-16 (it starts with a UTF-16 byte-order mark); expected "
                         "UTF-8, with or without a BOM: save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(f"{path}: line {line}, column {column}: byte 0x{data[e.start]:02x} is not UTF-8; "
                         f"{what} must be UTF-8 (with or without a BOM): re-save it as UTF-8 (a Latin-1 "
                         "file: iconv -f latin1 -t utf-8)") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise ValueError(f"{path}: line {line}: holds a NUL byte; {what} must be a UTF-8 text file")
    return text


def _csv_rows(path: Path, what: str) -> csv.DictReader:
    return csv.DictReader(io.StringIO(read_text(path, what), newline=""))


def _require_dir(name: str, root) -> Path:
    if root is None:
        raise ValueError(f"dataset '{name}' needs a root folder; expected layout: {LAYOUTS[name]}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root for '{name}' not found or not a folder; "
                                f"expected layout: {LAYOUTS[name]}")
    return root


def _find_class_root(name: str, root: Path, known) -> Path:
    """The folder at most two levels under ``root`` (root first) holding the most known class folders."""
    candidates = [root] + sorted(d for d in root.iterdir() if d.is_dir())
    candidates += sorted(g for d in candidates[1:] for g in d.iterdir() if g.is_dir())
    best, best_n = None, 0
    for c in candidates:   # shallowest wins a tie, because candidates go by depth
        n = sum((c / k).is_dir() for k in known)
        if n > best_n:
            best, best_n = c, n
    if best is None:
        raise ValueError(f"{root}: no class folder of '{name}' found here or two levels below; "
                         f"expected layout: {LAYOUTS[name]}")
    return best


def stratified_folds(ids, labels, k: int, seed: int) -> np.ndarray:
    """The one way generated folds are made: stratified, shuffled folds 1..``k`` over clips sorted by id.

    ``sklearn.model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)`` applied to
    the clips in id order, so the folds depend only on (ids, labels, k, seed): extraction, training and
    the grid all call this and agree. Returns the fold (1..k) of each clip, in the order given.

    Raises ``ValueError`` naming the classes with fewer than ``k`` clips, or a bad ``k``.
    """
    ids = np.asarray(ids, dtype=str)
    labels = np.asarray(labels, dtype=str)
    if len(ids) != len(labels):
        raise ValueError(f"stratified_folds: {len(ids)} ids but {len(labels)} labels")
    if int(k) < 2:
        raise ValueError(f"folds must be at least 2, found {k}")
    order = np.argsort(ids, kind="stable")
    classes, counts = np.unique(labels, return_counts=True)
    small = {str(c): int(n) for c, n in zip(classes, counts) if n < k}
    if small:
        raise ValueError(f"{k} stratified folds need at least {k} clips per class; these classes have "
                         f"fewer: {small}")
    fold_sorted = np.zeros(len(ids), dtype=np.int64)
    from sklearn.model_selection import StratifiedKFold  # here: importing scikit-learn costs seconds
    skf = StratifiedKFold(n_splits=int(k), shuffle=True, random_state=int(seed))
    for f, (_, test) in enumerate(skf.split(np.zeros(len(ids)), labels[order]), start=1):
        fold_sorted[test] = f
    folds = np.empty(len(ids), dtype=np.int64)
    folds[order] = fold_sorted
    return folds


def dataset_key(ds) -> str:
    """SHA-256 naming a dataset's exact contents: its name, and per clip the id, label, split, fold,
    and the file's size and modification time (ns), and its SHA-256 when the clips carry one
    (``verify_audio="content"``). A file replaced, re-encoded or touched changes it; content replaced
    with the same size and the mtime restored (``cp -p``, ``tar``) changes it only with the SHA-256.
    A file that no longer exists is keyed as missing."""
    h = hashlib.sha256(f"dataset {ds.name}\n".encode("utf-8"))
    for c in ds.clips:
        st = file_stamp(c.path)
        stamp = "missing" if st is None else f"{st[0]}\t{st[1]}" + (f"\t{c.sha256}" if c.sha256 else "")
        h.update(f"{c.id}\t{c.label}\t{c.split}\t{c.fold}\t{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _assign_folds(name: str, clips: list[Clip], folds: int, seed: int) -> list[Clip]:
    """Stratified, shuffled folds 1..K (``stratified_folds``) over clips sorted by id."""
    try:
        fold_of = stratified_folds([c.id for c in clips], [c.label if c.tags is None else "" for c in clips],
                                   folds, seed)  # multi-label: tag sets are not strata, plain shuffled folds
    except ValueError as e:
        raise ValueError(f"dataset '{name}': {e}") from None
    return [replace(c, fold=int(f)) for c, f in zip(clips, fold_of)]


def _finish(name: str, root: Path, clips: list[Clip], problems: list[dict], protocol: str,
            info: dict, folds: int | None = None, seed: int = 0) -> Dataset:
    """Sort, check, and (when asked) assign stratified folds.

    ``protocol="folds"`` with ``folds=None`` and clips that bring no fold of their own becomes ``None``:
    the clips carry no evaluation protocol (the grid makes folds when it needs them)."""
    if not clips:
        detail = f"; {len(problems)} entries were unusable, e.g. {problems[0]}" if problems else ""
        raise ValueError(f"{root}: dataset '{name}' has no usable clips{detail}; "
                         f"expected layout: {LAYOUTS[name]}")
    clips = sorted(clips, key=lambda c: c.id)
    ids = [c.id for c in clips]
    dupes = sorted({i for i, j in zip(ids, ids[1:]) if i == j})
    if dupes:
        raise ValueError(f"{root}: dataset '{name}' names these clips more than once: {dupes[:5]}")
    if protocol == "folds" and folds is None and any(c.fold is None for c in clips):
        protocol = None
    elif folds is not None and protocol == "folds":
        clips = _assign_folds(name, clips, folds, seed)
        info = {**info, "folds": folds, "seed": seed,
                "fold_method": "sklearn StratifiedKFold(shuffle=True, random_state=seed)"}
    if protocol == "split":
        present = {c.split for c in clips}
        missing = [s for s in ("train", "val", "test") if s not in present]
        if missing:
            raise ValueError(f"{root}: dataset '{name}' has no {', '.join(missing)} clips; the split "
                             f"protocol needs train, val and test")
    classes = sorted({c.label for c in clips})
    return Dataset(name=name, root=root, clips=clips, classes=classes, protocol_hint=protocol,
                   problems=sorted(problems, key=lambda p: str(p["path"])), info=info)


# ---------------------------------------------------------------------------------------------
# loaders: each takes (root, split_dir, manifest, folds, seed) and returns a Dataset

def _load_gtzan(root, split_dir, manifest, folds, seed) -> Dataset:
    base = _find_class_root("gtzan", _require_dir("gtzan", root), GTZAN_GENRES)
    if split_dir is None:
        return _class_folders("gtzan", base, {g: g for g in GTZAN_GENRES}, folds, seed)
    split_dir = Path(split_dir)
    clips, problems, seen = [], [], {}
    for split, fname in SPLIT_FILES.items():
        list_path = split_dir / fname
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: split list not found; --split-dir must hold "
                                    f"{', '.join(SPLIT_FILES.values())} (lines like blues/blues.00029.wav)")
        for line in read_text(list_path, "a split list").splitlines():
            entry = line.strip()
            if not entry:
                continue
            genre = entry.split("/")[0]
            if genre not in GTZAN_GENRES or "/" not in entry:
                problems.append({"path": str(base / entry), "reason": f"listed in {fname}: unknown genre "
                                 f"'{genre}' (expected one of {', '.join(GTZAN_GENRES)})"})
                continue
            # The lists name .wav while the original distribution ships .au: accept either.
            listed = base / entry
            tried = [listed] + [listed.with_name(listed.stem + e) for e in (".au", ".wav")]
            found = next((p for p in tried if _file_problem(p) is None), None)
            if found is None:
                why = next((w for w in map(_file_problem, tried) if w != "missing"), None)
                problems.append({"path": str(base / entry),
                                 "reason": f"listed in {fname} but {why}" if why else
                                 f"listed in {fname} but missing (also tried .au and .wav)"})
                continue
            clip_id = _rel(found, base)
            if clip_id in seen:
                raise ValueError(f"{list_path}: {entry} is also listed in {SPLIT_FILES[seen[clip_id]]}; "
                                 f"a clip must be in one split only")
            seen[clip_id] = split
            clips.append(Clip(path=found, id=clip_id, label=genre, split=split))
    info = {"split_dir": str(split_dir), "split_files": dict(SPLIT_FILES)}
    return _finish("gtzan", base, clips, problems, "split", info)


def _class_folders(name: str, base: Path, folder_to_label: dict, folds: int, seed: int) -> Dataset:
    """One folder per class (the folder names given); other folders with audio are problems."""
    clips, problems = [], []
    walk = _Walk(base, problems)
    for folder in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
        label = folder_to_label.get(folder.name)
        for path in _audio_files(folder, problems, walk, via_link=folder.is_symlink()):
            if label is None:
                problems.append({"path": str(path), "reason": f"unknown label: folder '{folder.name}' is "
                                 f"not a class of '{name}' (expected {', '.join(folder_to_label)})"})
            else:
                clips.append(Clip(path=path, id=_rel(path, base), label=label))
    return _finish(name, base, clips, problems, "folds", {}, folds=folds, seed=seed)


def _load_ballroom(root, split_dir, manifest, folds, seed) -> Dataset:
    base = _find_class_root("ballroom", _require_dir("ballroom", root), BALLROOM_FOLDERS)
    return _class_folders("ballroom", base, BALLROOM_FOLDERS, folds, seed)


def _load_extended_ballroom(root, split_dir, manifest, folds, seed) -> Dataset:
    base = _find_class_root("extended-ballroom", _require_dir("extended-ballroom", root),
                            EXTENDED_BALLROOM_CLASSES)
    return _class_folders("extended-ballroom", base, {c: c for c in EXTENDED_BALLROOM_CLASSES}, folds, seed)


def _load_folder(root, split_dir, manifest, folds, seed) -> Dataset:
    base = _require_dir("folder", root)
    clips, problems = [], []
    for path in _audio_files(base, problems):
        rel = path.relative_to(base)
        if len(rel.parts) == 1:
            problems.append({"path": str(path), "reason": "unknown label: the file is not inside a class folder"})
        else:   # the class is the top-level folder, whatever lies between it and the file
            clips.append(Clip(path=path, id=rel.as_posix(), label=rel.parts[0]))
    return _finish("folder", base, clips, problems, "folds", {}, folds=folds, seed=seed)


def _load_us8k(root, split_dir, manifest, folds, seed) -> Dataset:
    root = _require_dir("us8k", root)
    base = root / "UrbanSound8K" if (root / "UrbanSound8K" / "metadata").is_dir() else root
    meta = base / "metadata" / "UrbanSound8K.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: UrbanSound8K metadata not found; expected layout: {LAYOUTS['us8k']}")
    clips, problems, named = [], [], set()
    on_disk = {}   # file name -> fold folders that hold it
    for path in _audio_files(base / "audio", problems) if (base / "audio").is_dir() else []:
        on_disk.setdefault(path.name, []).append(path)
    reader = _csv_rows(meta, "the UrbanSound8K metadata")
    absent = [c for c in ("slice_file_name", "fold", "class") if c not in (reader.fieldnames or [])]
    if absent:
        raise ValueError(f"{meta}: missing columns {absent}; expected {', '.join(US8K_COLUMNS)}")
    for line, row in enumerate(reader, start=2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        short = [c for c in ("slice_file_name", "fold", "class") if row.get(c) is None]
        if short:
            raise ValueError(f"{meta}: line {line}: too few fields ({short} missing); expected "
                             f"{len(reader.fieldnames)} comma-separated fields: {', '.join(reader.fieldnames)}")
        fname, label = row["slice_file_name"].strip(), row["class"].strip()
        try:
            fold = int(row["fold"])
        except ValueError as e:
            raise ValueError(f"{meta}: line {line}: fold {row['fold']!r} is not an integer 1..10") from e
        named.add(fname)
        path = base / "audio" / f"fold{fold}" / fname
        why = _file_problem(path)
        if why is None:
            clips.append(Clip(path=path, id=_rel(path, base), label=label, fold=fold))
        elif why != "missing":
            problems.append({"path": str(path), "reason": f"named in the metadata (line {line}) but {why}"})
        elif fname in on_disk:
            where = ", ".join(p.parent.name for p in on_disk[fname])
            problems.append({"path": str(path), "reason": f"found in {where} but the metadata "
                             f"(line {line}) says fold{fold}"})
        else:
            problems.append({"path": str(path), "reason": f"named in the metadata (line {line}) but missing"})
    for fname, paths in on_disk.items():
        if fname not in named:
            problems += [{"path": str(p), "reason": "unknown label: not in metadata/UrbanSound8K.csv"}
                         for p in paths]
    return _finish("us8k", base, clips, problems, "folds", {"folds": "UrbanSound8K's own folds"})


TAG_SEP = ";"  # a multi-label manifest's tags cell: "rock;guitar"


def _parse_tags(cell, manifest, line) -> tuple:
    """A ``tags`` cell as sorted unique tags; an empty cell or an empty tag is one clear error."""
    text = (cell or "").strip()
    tags = [t.strip() for t in text.split(TAG_SEP)]
    if not text or not all(tags):
        what = "is empty" if not text else "has an empty tag"
        raise ValueError(f"{manifest}: line {line}: tags {cell!r} {what}; expected one or more tags separated "
                         f"by '{TAG_SEP}' (e.g. 'rock{TAG_SEP}guitar')")
    return tuple(sorted(set(tags)))


def _load_csv(root, split_dir, manifest, folds, seed, name: str = "csv") -> Dataset:
    if manifest is None:
        if root is None:
            raise ValueError(f"dataset '{name}' needs --manifest; expected: {LAYOUTS['csv']}")
        manifest = Path(root) / "manifest.csv"
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found; expected {LAYOUTS['csv']}")
    base = manifest.parent
    clips, problems = [], []
    reader = _csv_rows(manifest, "a manifest")
    cols = reader.fieldnames or []
    if "path" not in cols or not ("label" in cols or "tags" in cols):
        raise ValueError(f"{manifest}: header {cols} lacks 'path' and 'label' (or 'tags'); expected {LAYOUTS['csv']}")
    if "label" in cols and "tags" in cols:
        raise ValueError(f"{manifest}: has both 'label' and 'tags' columns; give 'label' (one class per clip) "
                         f"or 'tags' (multi-label) only")
    multilabel = "tags" in cols
    if "split" in cols and "fold" in cols:
        raise ValueError(f"{manifest}: has both 'split' and 'fold' columns; give one protocol only")
    for line, row in enumerate(reader, start=2):
        short = [c for c in cols if c and row.get(c) is None]
        if short:
            raise ValueError(f"{manifest}: line {line}: too few fields ({short} missing); expected "
                             f"{len(cols)} comma-separated fields: {', '.join(cols)}")
        rel = (row["path"] or "").strip()
        tags = _parse_tags(row["tags"], manifest, line) if multilabel else None
        label = TAG_SEP.join(tags) if multilabel else (row["label"] or "").strip()
        split = fold = None
        if "split" in cols:
            value = (row["split"] or "").strip().lower()
            if value not in SPLIT_NAMES:
                raise ValueError(f"{manifest}: line {line}: split {row['split']!r} is not one of "
                                 f"train, val (or valid, validation), test")
            split = SPLIT_NAMES[value]
        if "fold" in cols:
            try:
                fold = int(row["fold"])
                if fold < 1:
                    raise ValueError("below 1")
            except ValueError as e:
                raise ValueError(f"{manifest}: line {line}: fold {row['fold']!r} is not an "
                                 f"integer >= 1") from e
        path = base / rel
        if not rel or not label:
            problems.append({"path": str(path), "reason": f"line {line}: empty path or label"})
        elif (why := _file_problem(path)) is not None:
            problems.append({"path": str(path), "reason": f"named in {manifest.name} (line {line}) but {why}"})
        else:
            clips.append(Clip(path=path, id=Path(os.path.normpath(rel)).as_posix(), label=label,
                              split=split, fold=fold, tags=tags))
    info = {"manifest": str(manifest)}
    if multilabel:
        info["multilabel"] = {"separator": TAG_SEP, "tags": sorted({t for c in clips for t in c.tags})}
    if "split" in cols:
        return _finish(name, base, clips, problems, "split", info)
    if "fold" in cols:
        return _finish(name, base, clips, problems, "folds", {**info, "folds": "from the manifest"})
    return _finish(name, base, clips, problems, "folds", info, folds=folds, seed=seed)


def _load_synthetic(root, split_dir, manifest, folds, seed) -> Dataset:
    root = Path(root) if root is not None else DEFAULT_SYNTHETIC_ROOT
    if not (root / "manifest.csv").is_file():
        from audiodata.synthetic import make_synthetic   # first use only: it imports scipy.signal (seconds)
        if root.exists() and any(root.iterdir()):
            raise ValueError(f"{root}: exists but holds no manifest.csv; remove it to regenerate the "
                             f"synthetic dataset, or pass another root")
        if root.exists():
            root.rmdir()
        make_synthetic(root, progress=True)
    return _load_csv(root, None, root / "manifest.csv", folds, seed, name="synthetic")


DATASETS = {"gtzan": _load_gtzan, "ballroom": _load_ballroom, "extended-ballroom": _load_extended_ballroom,
            "us8k": _load_us8k, "folder": _load_folder, "csv": _load_csv, "synthetic": _load_synthetic}


def load_dataset(name: str, root=None, split_dir=None, manifest=None, folds: int | None = 10,
                 seed: int = 0, verify_audio: str = "stamp") -> Dataset:
    """List a dataset's clips with labels and their split or folds.

    Parameters
    ----------
    name : str
        One of ``DATASETS``: gtzan, ballroom, extended-ballroom, us8k, folder, csv, synthetic.
    root : str or Path, optional
        The dataset folder (see ``LAYOUTS``); for ``synthetic`` it defaults to ``runs/data/synthetic``
        and is generated there on first use.
    split_dir : str or Path, optional
        GTZAN only: a folder with ``train_filtered.txt``, ``valid_filtered.txt``, ``test_filtered.txt``;
        clips in none of them are left out. Without it GTZAN gets stratified folds.
    manifest : str or Path, optional
        ``csv`` only: the manifest file (default ``<root>/manifest.csv``).
    folds : int or None
        ``K``: stratified, shuffled folds (``stratified_folds``, seeded by ``seed``) made when the
        dataset brings no split or folds of its own. ``None``: none made; such clips keep
        ``fold=None`` and ``protocol_hint`` is ``None`` (extraction: features do not depend on folds).
    seed : int
        Shuffling seed of generated folds.
    verify_audio : {"stamp", "content"}
        ``content``: every clip carries the SHA-256 of its file (``Clip.sha256``), which
        :func:`dataset_key` then covers, so content replaced with the same size and mtime is noticed; a
        file that cannot be read while hashing goes to ``problems``. ``stamp`` (default): size and mtime.

    Returns
    -------
    Dataset
        Clips sorted by id.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; available: {', '.join(DATASETS)}")
    if split_dir is not None and name != "gtzan":
        raise ValueError(f"split_dir applies to gtzan only, not '{name}' (use a csv manifest with a split column)")
    if verify_audio not in ("stamp", "content"):
        raise ValueError(f"verify_audio must be 'stamp' or 'content', not {verify_audio!r}")
    ds = DATASETS[name](root, split_dir, manifest, folds, seed)
    return _with_content_hashes(ds) if verify_audio == "content" else ds


def _with_content_hashes(ds: Dataset) -> Dataset:
    from audiodata.decode import file_sha256
    clips, problems = [], list(ds.problems)
    for c in ds.clips:
        try:
            clips.append(replace(c, sha256=file_sha256(c.path)))
        except OSError as e:
            problems.append({"path": str(c.path), "reason": f"cannot be read to hash its content ({e.strerror})"})
    if not clips:
        raise ValueError(f"{ds.root}: no clip of dataset '{ds.name}' could be read to hash its content")
    return replace(ds, clips=clips, problems=sorted(problems, key=lambda p: str(p["path"])),
                   info={**ds.info, "verify_audio": "content"})
