"""On-chip training from the host's side: the project's data split as the chip stores it, and
the integer golden model of the training loop (:mod:`pezo.sim.ontrain`) driven through the fused
golden engine (:class:`pezo.host.fused.FusedGoldenTransport`, bit-exact with the plain
:class:`~pezo.sim.engine.EngineModel`, about 200x faster).

The golden model lives in ``pezo.sim`` (the golden-model layer), which may not import the host's
data loader or its fused engine; this module joins them (docs/on_device.md).

>>> from pezo.host.ontrain import train_on_chip_model
>>> res = train_on_chip_model(dataset="digits", model="logreg", seed=1)
>>> res.test_acc, res.step_ms, res.coef[:5]
"""

import dataclasses

import numpy as np

from pezo.host.data import is_table_spec, load_dataset
from pezo.host.fused import FusedGoldenTransport
from pezo.sim.ontrain import (CommandPort, ModelTransport, OnChipConfig, engine_config,
                              onchip_data, param_count, train_on_chip)

__all__ = ["ENGINES", "raw_splits", "quantise_features", "chip_data", "make_port", "train_on_chip_model"]

ENGINES = ("fused", "golden")


def raw_splits(dataset="digits", label=None, split=None, quantise=False, feature_bits=4):
    """The project's fixed split (:func:`pezo.host.data.load_dataset`; your own data file with
    its ``label`` column and ``split`` file too) with the raw features recovered (digits:
    integers 0..16): X = rint(X_std * scale + mean), exact for integer data. With ``quantise``,
    any numeric features instead become codes 0..2^b - 1 (:func:`quantise_features`). Returns
    (X_train, y_train, X_val, y_val, X_test, y_test)."""
    ds = load_dataset(dataset, label, split)
    raw = [ds.split(w)[0] * ds.scale + ds.mean for w in ("train", "val", "test")]
    ys = [np.asarray(ds.split(w)[1], dtype=np.int64) for w in ("train", "val", "test")]
    if quantise:
        xs = quantise_features(*raw, feature_bits=feature_bits)
    else:
        xs = []
        for X in raw:
            ints = np.rint(X)
            if np.abs(X - ints).max() > 1e-6 or ints.min() < 0 or ints.max() > 255:
                raise ValueError(f"Data set {dataset!r} does not have integer raw features in "
                                 f"0..255; the chip stores small integer codes (0..2^b - 1 at "
                                 f"b = 4 or 5 bits per feature; digits: 0..16): quantise them "
                                 f"(--quantise: {1 << feature_bits} equal bins over each "
                                 f"feature's training range) or scale and round them first")
            xs.append(ints.astype(np.int64))
    return xs[0], ys[0], xs[1], ys[1], xs[2], ys[2]


def quantise_features(X_train, X_val, X_test, feature_bits=4):
    """Codes 0..2^b - 1 of any numeric features: 2^b equal bins over each feature's training
    range [lo, hi], code = min(floor((x - lo) / ((hi - lo) / 2^b)), 2^b - 1), values outside
    the training range clamped to the end bins (a constant training column gives code 0)."""
    n = 1 << feature_bits
    X_train = np.asarray(X_train, dtype=np.float64)
    lo, hi = X_train.min(axis=0), X_train.max(axis=0)
    width = (hi - lo) / n
    width[width == 0] = 1.0
    return [np.clip(np.floor((np.asarray(X, dtype=np.float64) - lo) / width), 0, n - 1)
            .astype(np.int64) for X in (X_train, X_val, X_test)]


_DATA = {}


def chip_data(dataset="digits", feature_bits=4, standardise=True, t_frac=10, label=None,
              split=None, quantise=False, class_multiple=1):
    """:func:`pezo.sim.ontrain.onchip_data` of the project's split (cached; your own data is
    read again each time); ``quantise``: :func:`quantise_features` first; ``class_multiple``:
    the class count rounded up to a multiple of it (a design computes classes ``lanes`` at a
    time; the added classes have no sample)."""
    key = (dataset, feature_bits, standardise, t_frac, label, split, quantise, class_multiple)
    if key in _DATA:
        return _DATA[key]
    splits = raw_splits(dataset, label, split, quantise, feature_bits)
    seen = int(max(y.max() for y in splits[1::2])) + 1
    data = onchip_data(*splits, n_classes=-(-seen // class_multiple) * class_multiple,
                       feature_bits=feature_bits,
                       standardise=standardise, t_frac=t_frac, name=dataset)
    if not is_table_spec(dataset):
        _DATA[key] = data
    return data


def make_port(n_params, lanes=2, engine="fused") -> CommandPort:
    """The engine port of the training design: the fused golden engine (default) or the plain
    golden model (``"golden"``, the reference: slow)."""
    if engine not in ENGINES:
        raise ValueError(f"Engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    cfg = engine_config(n_params, lanes)
    return CommandPort(FusedGoldenTransport(cfg) if engine == "fused" else ModelTransport(cfg))


def train_on_chip_model(config=None, *, dataset="digits", feature_bits=4, standardise=True,
                        engine="fused", theta0=None, log=None, stop_after=None, label=None,
                        split=None, quantise=False, class_multiple=1, **overrides):
    """Train on the integer golden model of the chip: ``config`` an
    :class:`~pezo.sim.ontrain.OnChipConfig` (or None), ``overrides`` its fields; the data set
    through the project's split at ``feature_bits`` with or without the standardisation table.
    Returns an :class:`~pezo.sim.ontrain.OnChipResult`. The BLAS pool is limited to one thread
    (as the host trainer does: the products are small; the result is the same either way, the
    float64 products of integers being exact)."""
    cfg = dataclasses.replace(config or OnChipConfig(), **overrides).resolved()
    data = chip_data(dataset, feature_bits, standardise, cfg.arith.t_frac, label, split,
                     quantise, class_multiple)
    d = param_count(cfg.model, data.n_features, data.n_classes, cfg.hidden)
    port = make_port(d, cfg.lanes, engine)
    try:
        # lazy import: threadpoolctl is heavy and needed only here (scikit-learn brings it)
        from threadpoolctl import threadpool_limits
    except ImportError:
        res = train_on_chip(data, cfg, port=port, theta0=theta0, log=log,
                                stop_after=stop_after)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            res = train_on_chip(data, cfg, port=port, theta0=theta0, log=log,
                                stop_after=stop_after)
    res.config.update(dataset=dataset, feature_bits=feature_bits, standardise=standardise,
                      engine=engine)
    return res
