"""A trained model out of a run, in the forms people deploy and hardware flows load, and back in
for prediction (issue 26, model out).

:func:`export_run` writes, into one directory:

==================  ===========================================================================
``model.json``      what the model is: kind, sizes, activation, the data set, its classes (the
                    original labels) and feature names, the weight format
``model.npz``       float parameters ``theta`` (the trainer's layout), the standardisation
                    ``mean`` and ``scale`` (training statistics)
``weights.hex``     the engine's raw fixed-point words, one per line, two's complement in
                    ``w_bits`` bits (``$readmemh``); the engine's padding words are zero
``weights.py``      the same words as a Python list (``WEIGHTS``; an Amaranth ``Memory`` init)
``model.onnx``      the model with the standardisation folded into the first layer: ``Gemm``
                    [``Tanh`` or ``Relu``, ``Gemm``] ``Softmax``; input ``x`` (n x F raw
                    features, float32), output ``probabilities`` (n x K)
==================  ===========================================================================

The fixed-point words are exact for a run on an engine source (its weights are those words /
2^w_frac); for a float source (gaussian, uniform) they are the weights rounded to the format
(``model.json`` says which). :func:`predict` runs the training code's own forward pass
(:meth:`pezo.host.models.Model.logits`) on the standardised features.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pezo.host.models import Model, engine_depth, make_model

__all__ = ["Exported", "export_run", "load_exported", "onnx_model", "predict", "weight_words"]

ENGINE_SOURCES = ("pezo", "pezo-sim", "board")


@dataclass(frozen=True)
class Exported:
    model: Model
    theta: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    classes: tuple
    features: tuple
    meta: dict


def _format(weight_format):
    """(w_int, w_frac) of "Qi.f"."""
    i, f = weight_format[1:].split(".")
    return int(i), int(f)


def weight_words(theta, weight_format, lanes=1):
    """The parameters as the engine's words (int64, padded with zeros to the engine depth):
    round(theta 2^w_frac), saturated to the format; returns (words, exact) where ``exact``
    says the parameters were already on the grid."""
    w_int, w_frac = _format(weight_format)
    bits = w_int + w_frac
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    scaled = np.asarray(theta, dtype=np.float64) * (1 << w_frac)
    words = np.clip(np.rint(scaled), lo, hi).astype(np.int64)
    exact = bool(np.array_equal(words, scaled))
    out = np.zeros(engine_depth(len(words), lanes), dtype=np.int64)
    out[:len(words)] = words
    return out, exact


def onnx_model(model: Model, theta, mean, scale):
    """The model as ONNX, standardisation folded in: (x - mean) / scale @ W + b =
    x @ (W / scale[:, None]) + (b - (mean / scale) @ W)."""
    # lazy import: onnx is needed only here
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    p = model.unpack(theta)
    mean, scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
    first = "W" if model.kind == "logreg" else "W1"
    W = p[first] / scale[:, None]
    b = p["b" if model.kind == "logreg" else "b1"] - (mean / scale) @ p[first]
    inits = [numpy_helper.from_array(W.astype(np.float32), "W0"),
             numpy_helper.from_array(b.astype(np.float32), "b0")]
    nodes = [helper.make_node("Gemm", ["x", "W0", "b0"], ["z0"])]
    last = "z0"
    if model.kind == "mlp":
        act = "Tanh" if model.activation == "tanh" else "Relu"
        inits += [numpy_helper.from_array(p["W2"].astype(np.float32), "W1"),
                  numpy_helper.from_array(p["b2"].astype(np.float32), "b1")]
        nodes += [helper.make_node(act, ["z0"], ["h0"]),
                  helper.make_node("Gemm", ["h0", "W1", "b1"], ["z1"])]
        last = "z1"
    nodes.append(helper.make_node("Softmax", [last], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, f"pezo_{model.kind}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", model.n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", model.n_out])],
        inits)
    m = helper.make_model(graph, producer_name="pezo",
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8                     # readable by onnxruntime releases of the last years
    onnx.checker.check_model(m)
    return m


def export_run(result: dict, out, ds=None) -> dict:
    """Write ``result`` (a :class:`pezo.host.train.TrainResult` as a dict, e.g. a run's
    log.json) into directory ``out``; ``ds``: its data set (loaded again from the run's
    configuration when None). Returns {kind: path} of the files written.

    Raises
    ------
    ValueError
        For a run without saved parameters, or one whose parameters are not a float network
        (ElasticZO-INT8's integer network).
    """
    from pezo.host.data import load_dataset
    cfg = result.get("config", {})
    params = result.get("params") or []
    if not params:
        raise ValueError("The run holds no trained parameters (a log.json written before "
                         "exports existed, or a distributed run): train again with --export DIR")
    if cfg.get("algo") == "elasticzo-int8":
        raise ValueError("ElasticZO-INT8 trains an integer network (integer ReLU, weights in "
                         "LSBs): its export is not implemented; export a float-network run")
    if ds is None:
        ds = load_dataset(cfg["dataset"], cfg.get("label"), cfg.get("split"))
    model = make_model(cfg["model"], ds.n_features, ds.n_classes, cfg.get("hidden", 16),
                       cfg.get("activation") or "tanh")
    theta = np.asarray(params, dtype=np.float64)
    if len(theta) != model.n_params:
        raise ValueError(f"The run's {len(theta)} parameters do not fit {model.describe()} "
                         f"({model.n_params} parameters)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wf = cfg.get("weight_format") or "Q4.12"
    words, exact = weight_words(theta, wf, cfg.get("lanes", 1))
    w_bits = sum(_format(wf))
    classes = list(ds.classes) if ds.classes is not None else list(range(ds.n_classes))
    features = list(ds.features) if ds.features is not None else \
        [f"x{i}" for i in range(ds.n_features)]
    meta = {"kind": model.kind, "n_in": model.n_in, "n_out": model.n_out,
            "hidden": model.hidden, "activation": model.activation,
            "dataset": cfg["dataset"], "label": cfg.get("label"), "classes": classes,
            "features": features, "weight_format": wf, "w_bits": w_bits,
            "words_exact": exact, "source": cfg.get("source"),
            "test_acc": result.get("test_acc")}
    files = {"json": out / "model.json", "npz": out / "model.npz", "hex": out / "weights.hex",
             "py": out / "weights.py", "onnx": out / "model.onnx"}
    files["json"].write_text(json.dumps(meta, indent=2, default=str) + "\n")
    np.savez(files["npz"], theta=theta, mean=ds.mean, scale=ds.scale)
    mask = (1 << w_bits) - 1
    digits = -(-w_bits // 4)
    files["hex"].write_text("".join(f"{int(w) & mask:0{digits}x}\n" for w in words))
    files["py"].write_text(
        f"# {model.describe()}, {wf} words ({'exact' if exact else 'rounded'}), "
        f"engine order, zero-padded\nWEIGHTS = {[int(w) for w in words]}\n")
    files["onnx"].write_bytes(onnx_model(model, theta, ds.mean, ds.scale).SerializeToString())
    return files


def load_exported(path) -> Exported:
    """The model :func:`export_run` wrote into directory ``path``."""
    path = Path(path)
    for name in ("model.json", "model.npz"):
        if not (path / name).is_file():
            raise ValueError(f"{path} holds no exported model ({name} missing): export one with "
                             f"pezo train --export DIR or pezo export RUN_DIR")
    meta = json.loads((path / "model.json").read_text())
    with np.load(path / "model.npz") as f:
        theta, mean, scale = f["theta"], f["mean"], f["scale"]
    model = make_model(meta["kind"], meta["n_in"], meta["n_out"],
                       meta["hidden"] if meta["kind"] == "mlp" else 16,
                       meta["activation"] or "tanh")
    return Exported(model, theta, mean, scale, tuple(meta["classes"]), tuple(meta["features"]),
                    meta)


def predict(exp: Exported, X) -> tuple:
    """(probabilities (n, K), predicted class indices (n,)) of raw features ``X`` (n, F), by
    the training code's forward pass on the standardised features."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != exp.model.n_in:
        raise ValueError(f"The model takes {exp.model.n_in} features per row, not "
                         f"{X.shape[1] if X.ndim == 2 else X.shape}")
    z = exp.model.logits(exp.theta, (X - exp.mean) / exp.scale)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p, z.argmax(axis=1)
