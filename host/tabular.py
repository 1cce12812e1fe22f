"""Your own data: a classification table read from a CSV, Parquet or NumPy ``.npz`` file, or one
of the data sets scikit-learn ships (offline), checked before any training.

=====================  =====================================================================
spec                   what is read
=====================  =====================================================================
``PATH.csv``           pandas ``read_csv``: a header row, one row per sample; the label column
                       is ``label`` (default: the last column), every other column a numeric
                       feature
``PATH.parquet``       pandas ``read_parquet`` (pyarrow): the same columns
``PATH.npz``           NumPy arrays ``X`` (n x F, numeric) and ``y`` (n)
``sklearn:NAME``       ``sklearn.datasets.load_NAME``: iris, wine, digits, breast_cancer
=====================  =====================================================================

Why pandas: CSV dialects, quoting, missing-value markers and type inference are its job, done
well for a decade; pyarrow is its Parquet engine. Labels of any type (strings, integers) become
0..K-1 in sorted order of the distinct values; :attr:`Table.classes` keeps the mapping.

Every check names the value, row or column and what is accepted (:class:`DataError`): an empty
file, a missing label column, a non-numeric feature, NaN or infinity, a single class, an unknown
file type.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Table", "SKLEARN_SETS", "read_table", "is_table_spec", "read_split",
           "read_features", "check_data_options"]

#: scikit-learn's bundled classification sets (no download) that ``sklearn:NAME`` reads
SKLEARN_SETS = ("iris", "wine", "digits", "breast_cancer")
SUFFIXES = (".csv", ".parquet", ".npz")
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data file or specification that cannot be trained on; the message names why."""


@dataclass(frozen=True)
class Table:
    """A classification table: float64 features, int64 labels 0..K-1."""

    source: str
    X: np.ndarray
    y: np.ndarray
    classes: tuple          # the original label of class k
    features: tuple         # the feature columns' names


def is_table_spec(spec) -> bool:
    """``spec`` names a file or a scikit-learn set (not one of the built-in data set names)."""
    return isinstance(spec, str) and (spec.startswith("sklearn:")
                                      or Path(spec).suffix.lower() in SUFFIXES)


def check_data_options(data, **options):
    """The command line's own-data options: ``data`` (``--data``) a table spec or None, and
    ``options`` (name -> value, e.g. ``label=...``) given only with it; ValueError otherwise."""
    for name, value in options.items():
        if value not in (None, False) and data is None:
            raise ValueError(f"--{name} applies to your own data (--data FILE)")
    if data is not None and not is_table_spec(data):
        raise ValueError(f"--data must be a .csv, .parquet or .npz file or sklearn:NAME, not "
                         f"{data!r}")


def read_table(spec: str, label: str | None = None) -> Table:
    """The table ``spec`` names (see the module docstring), checked.

    Raises
    ------
    DataError
        For anything that cannot be trained on, naming it.
    """
    if not isinstance(spec, str) or not spec:
        raise DataError(f"Data must be a file (.csv, .parquet, .npz) or sklearn:NAME, not {spec!r}")
    if spec.startswith("sklearn:"):
        if label is not None:
            raise DataError(f"A label column applies to CSV and Parquet files, not to {spec}")
        return _checked(spec, *_sklearn(spec[len("sklearn:"):]))
    path, suffix = _file(spec)
    if path.stat().st_size == 0:
        raise DataError(f"Data file {spec} is empty")
    if suffix == ".npz":
        if label is not None:
            raise DataError(f"A label column applies to CSV and Parquet files; {spec} holds "
                            f"arrays X and y")
        return _checked(spec, *_npz(path))
    return _checked(spec, *_frame(path, suffix, label))


def _file(spec):
    """(path, suffix) of a data file that exists and has a known type."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"Data file {spec}: unknown type {suffix or '(no suffix)'!r}; accepted: "
                        f"{', '.join(SUFFIXES)} or sklearn:NAME ({', '.join(SKLEARN_SETS)})")
    if not path.is_file():
        raise DataError(f"Data file {spec} does not exist")
    return path, suffix


def _sklearn(name):
    if name not in SKLEARN_SETS:
        raise DataError(f"scikit-learn data set must be one of {', '.join(SKLEARN_SETS)}, not "
                        f"{name!r}")
    # lazy import: scikit-learn is heavy and needed only here
    from sklearn import datasets
    bunch = getattr(datasets, f"load_{name}")()
    names = tuple(str(f) for f in getattr(bunch, "feature_names", range(bunch.data.shape[1])))
    classes = tuple(str(c) for c in bunch.target_names) if hasattr(bunch, "target_names") \
        else None
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    if classes is not None:
        y = np.asarray(classes, dtype=object)[y]
    return X, y, names, None


def _npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("X", "y") if k not in f.files]
            if missing:
                raise DataError(f"Data file {path} lacks array(s) {', '.join(missing)}; it holds "
                                f"{', '.join(f.files) or 'none'} (accepted: X, n x F numeric, "
                                f"and y, n labels)")
            X, y = f["X"], f["y"]
    except (ValueError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"Data file {path} is not a readable .npz: {e}") from None
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise DataError(f"Data file {path}: X must be n x F and y n labels, not X {X.shape} and "
                        f"y {y.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"Data file {path}: X must be real numbers, not {X.dtype}")
    return X.astype(np.float64), y, tuple(f"x{i}" for i in range(X.shape[1])), None


def _frame(path, suffix, label):
    # lazy import: pandas is heavy and needed only here
    import pandas as pd
    try:
        df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        raise DataError(f"Data file {path} could not be read as {suffix[1:]}: {e}") from None
    cols = [str(c) for c in df.columns]
    df.columns = cols
    if len(cols) < 2:
        raise DataError(f"Data file {path} has {len(cols)} column(s); accepted: a header row, "
                        f"one or more feature columns and a label column")
    if len(df) == 0:
        raise DataError(f"Data file {path} has a header but no rows")
    if label is None:
        label = cols[-1]
    elif label not in cols:
        raise DataError(f"Label column {label!r} is not in {path}; its columns: "
                        f"{', '.join(cols)}")
    feats = [c for c in cols if c != label]
    first_line = 2 if suffix == ".csv" else None

    def where(r):
        return _where(r, first_line)

    for c in feats:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"Feature column {c!r} of {path} is not numeric: {where(r)} "
                                f"holds {col.iloc[r]!r}; accepted: numbers in every feature "
                                f"column (the label column is {label!r}: --label names "
                                f"another)")
            df[c] = num
    y = df[label].to_numpy()
    if df[label].isna().any():
        r = int(np.flatnonzero(df[label].isna().to_numpy())[0])
        raise DataError(f"Label column {label!r} of {path} is empty at {where(r)}")
    return df[feats].to_numpy(dtype=np.float64), y, tuple(feats), first_line


def _where(r, first_line):
    """Data row ``r`` (from 0) as a user finds it: the file's line (CSV) or the row index."""
    return f"line {r + first_line}" if first_line is not None else f"row {r} (from 0)"


def _checked(source, X, y, features, first_line):
    """Labels to 0..K-1; NaN, infinity and single-class checks. ``first_line``: the file line of
    row 0 (CSV), or None (rows are counted from 0)."""
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{source}: feature {features[c]!r} is {X[r, c]} at "
                        f"{_where(r, first_line)}; accepted: "
                        f"finite numbers (no NaN, no infinity, no empty cell)")
    if len(X) == 0:
        raise DataError(f"{source} holds no samples")
    try:
        classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
    except TypeError:
        s = np.asarray([str(v) for v in y], dtype=object)
        classes, y_idx = np.unique(s, return_inverse=True)
    if len(classes) < 2:
        only = classes[0].item() if hasattr(classes[0], "item") else classes[0]
        raise DataError(f"{source}: every sample has label {only!r}; a classifier needs "
                        f"two or more classes")
    return Table(source, np.ascontiguousarray(X, dtype=np.float64), y_idx.astype(np.int64),
                 tuple(v.item() if hasattr(v, "item") else v for v in classes), tuple(features))


def read_split(path, n: int) -> np.ndarray:
    """A split file: one word per data row, ``train``, ``val`` or ``test`` (blank lines and
    lines starting with ``#`` skipped), for exactly ``n`` rows; returns the words as an array.

    Raises
    ------
    DataError
        For a missing file, a wrong word (naming its line) or a wrong row count.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Split file {path} does not exist")
    words = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        if w not in SPLITS:
            raise DataError(f"Split file {path}, line {i}: {w!r}; accepted: {', '.join(SPLITS)} "
                            f"(one per data row)")
        words.append(w)
    if len(words) != n:
        raise DataError(f"Split file {path} names {len(words)} rows; the data has {n}")
    return np.asarray(words)


def read_features(spec: str, features, label: str | None = None):
    """Rows to predict: (X (n x F floats in the order of ``features``), labels or None).

    A CSV or Parquet file must hold every column of ``features`` (by name); its labels are the
    column ``label``, or the one column left over when ``label`` is None (none left: no labels).
    An ``.npz`` holds ``X`` (n x F) and optionally ``y``; ``sklearn:NAME`` gives both. The same
    checks as :func:`read_table` apply (NaN, infinity, non-numeric features).

    Raises
    ------
    DataError
        Naming the missing columns, the bad value's line or row, or the wrong shape.
    """
    features = list(features)
    if isinstance(spec, str) and spec.startswith("sklearn:"):
        t = read_table(spec)
        return t.X, [t.classes[k] for k in t.y]
    path, suffix = _file(spec)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f.files:
                raise DataError(f"Data file {spec} lacks array X; it holds {', '.join(f.files)}")
            X = np.asarray(f["X"], dtype=np.float64)
            y = f["y"].tolist() if "y" in f.files else None
        if X.ndim != 2 or X.shape[1] != len(features):
            raise DataError(f"Data file {spec}: X must be n x {len(features)} (the model's "
                            f"features), not {X.shape}")
        _finite(spec, X, features, None)
        return X, y
    import pandas as pd
    try:
        df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file {spec} is empty") from None
    df.columns = [str(c) for c in df.columns]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(f"Data file {spec} lacks the model's feature column(s) "
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; it has "
                        f"{', '.join(df.columns[:8])}{' ...' if len(df.columns) > 8 else ''}")
    rest = [c for c in df.columns if c not in features]
    if label is not None and label not in df.columns:
        raise DataError(f"Label column {label!r} is not in {spec}; its columns: "
                        f"{', '.join(df.columns)}")
    if label is None and len(rest) == 1:
        label = rest[0]
    first_line = 2 if suffix == ".csv" else None
    for c in features:
        if not pd.api.types.is_numeric_dtype(df[c]):
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna() & df[c].notna()
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"Feature column {c!r} of {spec} is not numeric: "
                                f"{_where(r, first_line)} holds {df[c].iloc[r]!r}")
            df[c] = num
    X = df[features].to_numpy(dtype=np.float64)
    _finite(spec, X, features, first_line)
    return X, (df[label].tolist() if label is not None else None)


def _finite(source, X, features, first_line):
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{source}: feature {features[c]!r} is {X[r, c]} at "
                        f"{_where(r, first_line)}; accepted: finite numbers")
