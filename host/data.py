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

Split (fixed, documented): stratified 60 / 20 / 20 train / validation / test. The test set is cut
first (``train_test_split(test_size=0.2, stratify=y, random_state=SPLIT_SEED)``), then a quarter
of the rest becomes the validation set (same call, ``test_size=0.25``), so the split never depends
on the training run's seed. Features are standardised with the *training* mean and standard
deviation only (a constant training column, such as the always-blank pixels of ``digits``, keeps
a scale of 1, so it stays 0 everywhere).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["DATASETS", "TRAIN_DATASETS", "SYNTHETIC", "SPLIT_SEED", "Dataset", "load_dataset"]

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


def load_dataset(name: str) -> Dataset:
    """The named data set, split 60/20/20 (stratified, fixed) and standardised with training
    statistics.

    Raises
    ------
    ValueError
        For a name that is not one of :data:`TRAIN_DATASETS`.
    """
    if not isinstance(name, str) or name not in TRAIN_DATASETS:
        raise ValueError(f"Dataset must be one of {', '.join(TRAIN_DATASETS)}, not {name!r}")
    if name in _CACHE:
        return _CACHE[name]
    # lazy import: scikit-learn is heavy and needed only here
    from sklearn.model_selection import train_test_split
    X, y = _raw(name)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                      random_state=SPLIT_SEED)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.25,
                                                      stratify=y_rest, random_state=SPLIT_SEED)
    mean = X_train.mean(axis=0)
    scale = X_train.std(axis=0)
    scale[scale == 0] = 1.0
    ds = Dataset(name, (X_train - mean) / scale, y_train, (X_val - mean) / scale, y_val,
                 (X_test - mean) / scale, y_test, mean, scale)
    for a in (ds.X_train, ds.X_val, ds.X_test, ds.y_train, ds.y_val, ds.y_test):
        a.setflags(write=False)
    _CACHE[name] = ds
    return ds
