"""Small real data sets for host-side ZO training: the ones that ship with scikit-learn (offline).

=================  =======  ========  =======  ==========================================
name               samples  features  classes  source
=================  =======  ========  =======  ==========================================
``digits``         1797     64        10       ``sklearn.datasets.load_digits`` (8x8 images)
``breast_cancer``  569      30        2        ``sklearn.datasets.load_breast_cancer``
``wine``           178      13        3        ``sklearn.datasets.load_wine``
``synthetic``      400      20        3        ``sklearn.datasets.make_classification``
                                               (10 informative features, ``random_state=0``)
=================  =======  ========  =======  ==========================================

``synthetic`` is generated, not measured: a fixed draw of :data:`SYNTHETIC` (the reproducer of
issue 23, where ElasticZO-INT8 saturated its engine). It is a training data set (``pezo train
--dataset synthetic``), not one of the real :data:`DATASETS` that the parity study runs.

Your own data (``load_dataset("PATH.csv")``, ``.parquet``, ``.npz`` or ``"sklearn:NAME"``,
:mod:`pezo.host.tabular`) goes through the same split and standardisation, or through an explicit
split file naming each row's split; every class must be in every split.

Split (fixed, documented): stratified 60 / 20 / 20 train / validation / test. The test set is cut
first (``train_test_split(test_size=0.2, stratify=y, random_state=SPLIT_SEED)``), then a quarter
of the rest becomes the validation set (same call, ``test_size=0.25``), so the split never depends
on the training run's seed. Features are standardised with the *training* mean and standard
deviation only (a constant training column, such as the always-blank pixels of ``digits``, keeps
a scale of 1, so it stays 0 everywhere).
"""

from dataclasses import dataclass, field

import numpy as np

from pezo.host.tabular import DataError, is_table_spec, read_split, read_table

__all__ = ["DATASETS", "TRAIN_DATASETS", "SYNTHETIC", "SPLIT_SEED", "Dataset", "load_dataset",
           "make_dataset", "DataError", "is_table_spec"]

DATASETS = ("digits", "breast_cancer", "wine")
#: ``make_classification`` arguments of the ``synthetic`` set (fixed: the set never changes)
SYNTHETIC = dict(n_samples=400, n_features=20, n_informative=10, n_redundant=2, n_classes=3,
                 random_state=0)
#: every data set ``load_dataset`` and the trainer accept: the real ones and ``synthetic``
TRAIN_DATASETS = DATASETS + ("synthetic",)
SPLIT_SEED = 20250425       # the split's random_state (fixed; not the training seed)


@dataclass(frozen=True)
class Dataset:
    """A standardised, split classification data set (float64 features, int64 labels)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray        # training statistics used for the standardisation
    scale: np.ndarray
    classes: tuple = field(default=None)    # your own data: the original label of class k
    features: tuple = field(default=None)   # your own data: the feature columns' names

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max()) + 1)

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def split(self, which: str):
        """(X, y) of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise ValueError(f"Split must be one of train, val, test, not {which!r}")
        return getattr(self, f"X_{which}"), getattr(self, f"y_{which}")


def _raw(name):
    # lazy import: scikit-learn is heavy and needed only here
    from sklearn import datasets
    if name == "synthetic":
        X, y = datasets.make_classification(**SYNTHETIC)
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
              "wine": datasets.load_wine}[name]
    X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


_CACHE = {}


def make_dataset(name, X, y, split=None, classes=None, features=None) -> Dataset:
    """``X`` (n x F floats) and ``y`` (n labels 0..K-1) split and standardised: stratified
    60/20/20 with :data:`SPLIT_SEED`, or by ``split`` (n words train/val/test); the
    standardisation uses the training rows only.

    Raises
    ------
    DataError
        When a class has too few samples for the stratified split, or a class is absent from a
        split (naming the class and the split).
    """
    # lazy import: scikit-learn is heavy and needed only here
    from sklearn.model_selection import train_test_split
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    label = (lambda k: repr(classes[k])) if classes is not None else (lambda k: str(k))
    K = int(y.max()) + 1
    if split is None:
        counts = np.bincount(y, minlength=K)
        need = 5                 # a stratified 60/20/20 split puts one in each of val and test
        if counts.min() < need or len(y) < 5 * K:
            k = int(np.argmin(counts))
            raise DataError(f"{name}: class {label(k)} has {counts[k]} sample(s); the stratified "
                            f"60/20/20 split needs at least {need} of every class (and "
                            f"{5 * K} samples in all; the data has {len(y)}), or give a split "
                            f"file naming each row's split")
        X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                          random_state=SPLIT_SEED)
        X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.25,
                                                          stratify=y_rest,
                                                          random_state=SPLIT_SEED)
    else:
        split = np.asarray(split)
        parts = {w: (X[split == w], y[split == w]) for w in ("train", "val", "test")}
        (X_train, y_train), (X_val, y_val), (X_test, y_test) = parts.values()
    for w, part in (("train", y_train), ("val", y_val), ("test", y_test)):
        absent = sorted(set(range(K)) - set(part.tolist()))
        if absent:
            raise DataError(f"{name}: class {label(absent[0])} is absent from the {w} split "
                            f"({len(part)} rows); every class must be in every split")
    mean = X_train.mean(axis=0)
    scale = X_train.std(axis=0)
    scale[scale == 0] = 1.0
    ds = Dataset(name, (X_train - mean) / scale, y_train, (X_val - mean) / scale, y_val,
                 (X_test - mean) / scale, y_test, mean, scale, classes, features)
    for a in (ds.X_train, ds.X_val, ds.X_test, ds.y_train, ds.y_val, ds.y_test):
        a.setflags(write=False)
    return ds


def load_dataset(name: str, label: str | None = None, split: str | None = None) -> Dataset:
    """The named data set (:data:`TRAIN_DATASETS`), or your own (a ``.csv``, ``.parquet`` or
    ``.npz`` file, or ``sklearn:NAME``; ``label``: the label column of a CSV or Parquet file,
    default the last; ``split``: a file naming each row's split), split 60/20/20 (stratified,
    fixed) and standardised with training statistics.

    Raises
    ------
    ValueError
        For a name that is neither one of :data:`TRAIN_DATASETS` nor a data file
        (:class:`DataError`, a ValueError, for data that cannot be trained on).
    """
    if is_table_spec(name):
        t = read_table(name, label)
        rows = read_split(split, len(t.y)) if split is not None else None
        return make_dataset(t.source, t.X, t.y, rows, t.classes, t.features)
    if not isinstance(name, str) or name not in TRAIN_DATASETS:
        raise ValueError(f"Dataset must be one of {', '.join(TRAIN_DATASETS)}, a .csv, .parquet "
                         f"or .npz file, or sklearn:NAME, not {name!r}")
    if label is not None or split is not None:
        raise ValueError(f"A label column and a split file apply to your own data files, not "
                         f"to the built-in set {name!r}")
    if name in _CACHE:
        return _CACHE[name]
    ds = make_dataset(name, *_raw(name))
    _CACHE[name] = ds
    return ds
