"""The published figures this project reproduces, as data (no torch, no I/O).

Source: Pons & Serra, "Randomly weighted CNNs for (music) audio classification", ICASSP 2019, and
chapter 4 of Pons' thesis (Figs. 4.6 to 4.11). Accuracies are percentages, mean of 3 runs, with
front-ends of about 3500 features ("large" width). Figures stated in the text are exact; the rest
were read off the bar charts and are good to about +-1 point, so reports mark them with ``~``.

The study's GTZAN / Ballroom / UrbanSound8K correspond to this toolkit's ``gtzan`` /
``extended-ballroom`` / ``us8k``. GTZAN used the fault-filtered split (hyper-parameters chosen on
the validation set); Extended Ballroom and UrbanSound8K used 10 folds, so their figures are set
beside our cross-validated protocols (``cv-best`` and ``nested-cv``) and GTZAN's beside ``split``.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["Published", "PUBLISHED", "PUBLISHED_PROTOCOLS", "STUDY_DATASETS", "TRAINED_REFERENCES",
           "ORDERINGS", "SPECTROGRAM_ARCHS", "published_figure", "BlockScore", "SAMPLECNN_PUBLISHED",
           "SAMPLECNN_PAPERS", "samplecnn_published", "AS_PUBLISHED", "published_variant", "base_arch"]


class Published(NamedTuple):
    """One published accuracy.

    Attributes
    ----------
    accuracy : float
        Percent, in [0, 100].
    exact : bool
        True when the figure is stated in the text; False when read off a chart (+-1 point).
    feature_length : int
        Length of the feature vector the figure was obtained with; a row of ours is compared with
        it only when its feature length is the same (a small-width run is a different setting).
    """

    accuracy: float
    exact: bool
    feature_length: int


# Study dataset names in this toolkit, in the order the study presents them.
STUDY_DATASETS = ("gtzan", "extended-ballroom", "us8k")

# Which of our protocols reproduce the study's protocol on each dataset.
PUBLISHED_PROTOCOLS = {
    "gtzan": ("split",),
    "extended-ballroom": ("cv-best", "nested-cv"),
    "us8k": ("cv-best", "nested-cv"),
}

# arch -> (feature length, {(dataset, classifier): "figure"}); "~" marks a figure read off a chart.
# Written as strings so the table reads like the published one and the exact/approximate flag
# cannot drift from the number it belongs to.
_TABLE = {
    "vgg": (3585, {"gtzan": ("59.65", "~43.5"), "extended-ballroom": ("~71.5", "~69.5"),
                   "us8k": ("70.74", "~66.5")}),
    "7x96": (3585, {"gtzan": ("~45", "~43"), "extended-ballroom": ("~60.5", "~56.5"),
                    "us8k": ("~57", "~58")}),
    "7x86": (3585, {"gtzan": ("~53", "~42"), "extended-ballroom": ("~65.5", "~57.5"),
                    "us8k": ("~63", "~60")}),
    "timbral": (3584, {"gtzan": ("~52.5", "~47"), "extended-ballroom": ("~64.5", "~57"),
                       "us8k": ("~62.5", "~61")}),
    "temporal": (3584, {"gtzan": ("~44", "~36.5"), "extended-ballroom": ("89.82", "~89.5")}),
    "timbral+temporal": (3584, {"gtzan": ("56.89", "~50"), "extended-ballroom": ("~81.5", "~78.5")}),
    "timbral+time": (3584, {"us8k": ("~64", "~63")}),
    "sample-level": (3584, {"gtzan": ("~50.5", "~48"), "extended-ballroom": ("~71", "~65.5"),
                            "us8k": ("~58.5", "~57.5")}),
    "frame-level": (3584, {"gtzan": ("~40", "~38"), "extended-ballroom": ("~38.5", "~38.5"),
                           "us8k": ("~38.5", "~42")}),
    "frame-level-many": (3584, {"gtzan": ("~44.5", "~39.5"), "extended-ballroom": ("~41.5", "~40.5"),
                                "us8k": ("~45", "~46.5")}),
    # The MFCC baseline was reported with an SVM only.
    "mfcc": (120, {"gtzan": ("53.44", None), "extended-ballroom": ("63.25", None),
                   "us8k": ("65.49", None)}),
}


def _parse(text: str, feature_length: int) -> Published:
    exact = not text.startswith("~")
    return Published(float(text.lstrip("~")), exact, feature_length)


# (dataset, arch, classifier) -> Published, for random weights.
PUBLISHED: dict[tuple[str, str, str], Published] = {
    (dataset, arch, classifier): _parse(text, n)
    for arch, (n, per_dataset) in _TABLE.items()
    for dataset, pair in per_dataset.items()
    for classifier, text in zip(("svm", "elm"), pair)
    if text is not None
}

# Fully trained systems the study quotes (percent, exact), with their source.
TRAINED_REFERENCES = {
    "gtzan": (82.1, "CNN pre-trained on the Million Song Dataset (Lee et al. 2018)"),
    "extended-ballroom": (93.7, "Jeong et al. 2017"),
    "us8k": (73.0, "Salamon & Bello 2017 (79% with augmentation)"),
}

# Spectrogram front-ends: the field of "the two best performing spectrogram-based models" (thesis 4.5).
SPECTROGRAM_ARCHS = ("7x96", "7x86", "timbral", "temporal", "timbral+temporal", "timbral+time", "vgg")

_THESIS = "Pons 2019 thesis"
_ALWAYS = "always / in all cases (every classifier and width)"
_TWO_BEST_SCOPE = ("scope not stated; checked where the text quotes its figures (SVM, about 3500 "
                   "features): on GTZAN with the ELM timbral ranks above vgg (Fig. 4.7)")


_SCOPE = {"classifiers": None, "widths": None, "alpha": 0.05, "among": None, "baseline": None}


def _ordering(name, kind, archs, dataset, source, claim, **scope):
    """One ordering the papers state; ``scope`` narrows it (``classifiers``, ``widths``, ``alpha``,
    ``among``, ``baseline``; defaults in ``_SCOPE``)."""
    unknown = set(scope) - set(_SCOPE)
    if unknown:
        raise TypeError(f"unknown ordering scope {sorted(unknown)}")
    return {"name": name, "kind": kind, "archs": tuple(archs), "dataset": dataset, "datasets": (dataset,),
            **dict(_SCOPE, **scope), "claim": claim, "source": source}


def _per_dataset(dataset, section, two_best, spectrogram_chain, baseline_winners):
    """The orderings section ``section`` of the thesis states for one dataset."""
    src = f"{_THESIS}, section {section}"
    out = [
        _ordering("sample-level > frame-level many-shapes", "chain", ("sample-level", "frame-level-many"),
                  dataset, src, _ALWAYS),
        _ordering(f"{two_best[0]} and {two_best[1]}: the two best spectrogram models", "top", two_best,
                  dataset, src, _TWO_BEST_SCOPE, classifiers=("svm",), widths=("large",),
                  among=SPECTROGRAM_ARCHS),
    ]
    if spectrogram_chain is not None:
        out.append(spectrogram_chain)
    out.append(_ordering(" and ".join(baseline_winners) + " > mfcc baseline", "beats", baseline_winners,
                         dataset, src, "stated for the SVM with about 3500 features",
                         classifiers=("svm",), widths=("large",), baseline="mfcc"))
    return out


# The orderings the study reports, each with its scope as the thesis words it (section 4.5, per
# dataset; section 4.6 for the waveform chain's second step). Fields:
#   kind "chain": each architecture beats the next; "top": the named architectures are the best of
#   ``among`` (the others run of that set); "beats": each named architecture beats ``baseline``.
#   classifiers / widths: the groups the claim covers (None: every classifier / width of the study's;
#   "elm-hpelm" rows are never the study's ELM). alpha: the t-test level the text gives. claim: the
#   thesis's own scope words. source: where it is stated.
ORDERINGS = tuple(
    _per_dataset("gtzan", "4.5.1", ("timbral+temporal", "vgg"), None, ("vgg", "timbral+temporal"))
    + [
        _ordering("timbral+temporal > vgg", "chain", ("timbral+temporal", "vgg"), "gtzan",
                  f"{_THESIS}, section 4.5.1", "with the ELM (about 3500 features) only; equivalent "
                  "otherwise (p > 0.05)", classifiers=("elm",), widths=("large",)),
        _ordering("7x86 > 7x96", "chain", ("7x86", "7x96"), "gtzan", f"{_THESIS}, section 4.5.1",
                  "with SVMs only; equivalent with ELMs (p >> 0.05)", classifiers=("svm",)),
    ]
    + _per_dataset("extended-ballroom", "4.5.2", ("temporal", "timbral+temporal"),
                   _ordering("temporal > timbral+temporal", "chain", ("temporal", "timbral+temporal"),
                             "extended-ballroom", f"{_THESIS}, section 4.5.2", _ALWAYS),
                   ("temporal",))
    + [_ordering("7x86 > 7x96", "chain", ("7x86", "7x96"), "extended-ballroom",
                 f"{_THESIS}, section 4.5.2", _ALWAYS)]
    + _per_dataset("us8k", "4.5.3", ("vgg", "timbral+time"),
                   _ordering("vgg > timbral+time", "chain", ("vgg", "timbral+time"), "us8k",
                             f"{_THESIS}, section 4.5.3", _ALWAYS),
                   ("vgg",))
    + [_ordering("7x86 > 7x96", "chain", ("7x86", "7x96"), "us8k", f"{_THESIS}, section 4.5.3",
                 _ALWAYS + "; t-test p < 0.075", alpha=0.075)]
    + [_ordering("frame-level many-shapes > frame-level", "chain", ("frame-level-many", "frame-level"), ds,
                 f"{_THESIS}, section 4.6 (summary)", "in general (no scope or t-test stated)")
       for ds in STUDY_DATASETS]
)


AS_PUBLISHED = "as published"  # rows computed as the study's code did (--as-published), docs/fidelity.md


def published_variant(flags) -> str | None:
    """The label of a results file's ``as_published`` record (``{"grid": bool, "features": bool}``):
    ``"as published"`` when both the features and the grid were computed as the study's code did, a
    qualified label when only one was, None when neither (the thesis text's definitions)."""
    if not isinstance(flags, dict):
        return None
    grid, features = bool(flags.get("grid")), bool(flags.get("features"))
    if grid and features:
        return AS_PUBLISHED
    if grid or features:
        return f"{AS_PUBLISHED}: {'grid' if grid else 'features'} only"
    return None


def base_arch(arch: str) -> str:
    """``"frame-level (as published)"`` -> ``"frame-level"``: the architecture a labelled row is of."""
    i = arch.find(f" ({AS_PUBLISHED}")
    return arch if i < 0 else arch[:i]


def published_figure(dataset: str, arch: str, classifier: str, weights: str, protocol: str,
                     feature_length: int | None) -> Published | None:
    """The published figure comparable with one row of ours, or None.

    Parameters
    ----------
    dataset, arch, classifier, weights, protocol : str
        The row's setting, in this toolkit's names (``extended-ballroom``, ``frame-level-many``); an
        "as published" row's label counts as its architecture (:func:`base_arch`), so both rows of an
        architecture stand beside the one published figure.
    feature_length : int or None
        The row's feature length; a figure is returned only for the study's feature length.

    Returns
    -------
    Published or None
        None when the study has no figure for this setting (trained weights, another protocol,
        another width, another dataset).
    """
    if weights != "random" or protocol not in PUBLISHED_PROTOCOLS.get(dataset, ()):
        return None
    figure = PUBLISHED.get((dataset, base_arch(arch), classifier))
    if figure is None or feature_length != figure.feature_length:
        return None
    return figure


# ----------------------------------------------------------------------------- SampleCNN blocks
# MagnaTagATune top-50 tags, ROC-AUC (a fraction), of the SampleCNN blocks in two papers that used
# different amplifying ratios alpha for the SE / ReSE blocks; a run is compared only with the scores
# of its own alpha and multi-level setting (``samplecnn_published``), never with a mixture.

SAMPLECNN_PAPERS = {
    "kim2018": "Kim, Lee & Nam, ICASSP 2018, Table 1 (SE / ReSE alpha 16; ReSE-2 with weight decay "
               "1e-4)",
    "kim2019": "Kim, Lee & Nam, 2019 journal version, Table III (no multi-level; SE alpha as given, "
               "ReSE alpha 2^-3)",
}


class BlockScore(NamedTuple):
    """One published SampleCNN block score.

    Attributes
    ----------
    roc_auc : float
        MagnaTagATune top-50 macro ROC-AUC, in [0, 1].
    paper : str
        Key of ``SAMPLECNN_PAPERS``.
    alpha : float or None
        Amplifying ratio of the SE excitation (None for blocks without SE: basic, res1, res2).
    multi_level : bool
        Multi-level feature aggregation (last three blocks concatenated).
    weight_decay : float
        The weight decay the paper states for that model (0 where it states none).
    """

    roc_auc: float
    paper: str
    alpha: float | None
    multi_level: bool
    weight_decay: float


def _block_scores() -> tuple[BlockScore, ...]:
    rows = []
    # Kim et al. 2018 Table 1: block -> (multi, no multi); SE blocks at alpha 16.
    for block, (multi, single) in {"basic": (0.9077, 0.9055), "se": (0.9111, 0.9083),
                                   "res1": (0.9037, 0.9048), "res2": (0.9098, 0.9061),
                                   "rese1": (0.9053, 0.9066), "rese2": (0.9113, 0.9102)}.items():
        alpha = 16.0 if block in ("se", "rese1", "rese2") else None
        wd = 1e-4 if block == "rese2" else 0.0
        rows += [(block, BlockScore(multi, "kim2018", alpha, True, wd)),
                 (block, BlockScore(single, "kim2018", alpha, False, wd))]
    # Kim et al. 2019 Table III (music auto-tagging column), no multi-level.
    for block, alpha, auc in (("basic", None, 0.9054), ("se", 2.0 ** -3, 0.9083), ("se", 1.0, 0.9056),
                              ("se", 8.0, 0.9066), ("res1", None, 0.9014), ("res2", None, 0.9070),
                              ("rese1", 2.0 ** -3, 0.9038), ("rese2", 2.0 ** -3, 0.9075)):
        rows.append((block, BlockScore(auc, "kim2019", alpha, False, 0.0)))
    return tuple(rows)


# (block, BlockScore) pairs, in the papers' order.
SAMPLECNN_PUBLISHED: tuple[tuple[str, BlockScore], ...] = _block_scores()


def samplecnn_published(block: str, se_ratio: float, multi_level: bool) -> list[BlockScore]:
    """The published MagnaTagATune scores comparable with one SampleCNN run, each with its source.

    A block with squeeze-and-excitation (``se``, ``rese1``, ``rese2``) matches only the rows of the
    same amplifying ratio (alpha 16: Kim et al. 2018; alpha 2^-3, 2^0, 2^3: the 2019 paper), so an
    alpha 2^-3 run is never set beside the alpha 16 figures. Blocks without SE (basic, res1, res2)
    have no alpha and match both papers' rows of the same multi-level setting (their scores differ:
    two training campaigns), each labelled with its paper. Multi-level runs match only the 2018 paper.

    Returns
    -------
    list of BlockScore
        Empty when no paper reports this setting (e.g. SE at alpha 0.5, or multi-level at 2^-3).
    """
    has_se = block in ("se", "rese1", "rese2")
    return [score for b, score in SAMPLECNN_PUBLISHED
            if b == block and score.multi_level == bool(multi_level)
            and (not has_se or abs(score.alpha - float(se_ratio)) <= 1e-9 * score.alpha)]
