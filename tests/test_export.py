"""Your model out (issue 26): the exported files of a trained run against the run itself:
ONNX (run by onnxruntime, the standardisation folded in) against `pezo predict` on every row,
the fixed-point words against the float parameters bit for bit, `pezo export RUN_DIR` against
`pezo train --export`, predictions' accuracy against the training code's evaluation."""

import json
import re

import numpy as np
import pytest

from pezo.cli import main
from pezo.host.data import load_dataset
from pezo.host.export import load_exported, predict

# float32 ONNX against the float64 forward pass: probabilities agree to this (measured: about
# 1e-7 for these models; the bound leaves room for other onnxruntime builds)
PROB_TOL = 1e-5


def _train(tmp_path, name, *args):
    out, exp = tmp_path / name, tmp_path / f"{name}-model"
    assert main(["train", "--steps", "60", "--no-progress", "--out", str(out), "--export",
                 str(exp), *args]) == 0
    return out, exp


def _onnx_probs(path, X):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["probabilities"], {"x": X.astype(np.float32)})[0]


@pytest.mark.parametrize("args,exact", [
    (["--dataset", "digits", "--source", "pezo"], True),
    (["--dataset", "wine", "--model", "mlp", "--source", "gaussian"], False),
], ids=["digits-logreg-pezo", "wine-mlp-gaussian"])
def test_onnx_words_and_predict_agree_with_the_run(tmp_path, capsys, args, exact):
    run, mdir = _train(tmp_path, "run", *args)
    capsys.readouterr()
    log = json.loads((run / "log.json").read_text())
    exp = load_exported(mdir)
    theta = np.asarray(log["params"])
    assert np.array_equal(exp.theta, theta) and exp.meta["words_exact"] == exact
    # the fixed-point words: two's complement hex, the Python list the same, and for an engine
    # source exactly the float parameters times 2^12
    words = [int(v, 16) for v in (mdir / "weights.hex").read_text().split()]
    words = np.array([w - (1 << 16) if w >= 1 << 15 else w for w in words])
    ns = {}
    exec((mdir / "weights.py").read_text(), ns)
    assert ns["WEIGHTS"] == words.tolist()
    assert len(words) % 4 == 0 and not words[len(theta):].any()       # engine depth, padding
    if exact:
        assert np.array_equal(words[:len(theta)] / 4096.0, theta)
    else:
        assert np.abs(words[:len(theta)] / 4096.0 - theta).max() <= 2.0 ** -13
    # ONNX (standardisation folded in) against the training code's forward pass, every row
    name = log["config"]["dataset"]
    from sklearn import datasets
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    p_onnx = _onnx_probs(mdir / "model.onnx", X)
    p_ref, pred = predict(exp, X)
    assert np.abs(p_onnx - p_ref).max() < PROB_TOL
    top2 = np.sort(p_ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * PROB_TOL
    assert clear.mean() > 0.95 and (p_onnx.argmax(axis=1) == pred)[clear].all()
    # predictions on all rows: the training code's own evaluation of the same rows
    ds = load_dataset(name)
    allX = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    ally = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    _, acc = exp.model.evaluate(theta, allX, ally)
    assert acc == pytest.approx(float((pred == y).mean()), abs=0)
    # pezo export RUN_DIR writes the same model again
    assert main(["export", str(run), "--out", str(tmp_path / "again")]) == 0
    for f in ("weights.hex", "weights.py", "model.json"):
        assert (tmp_path / "again" / f).read_text() == (mdir / f).read_text()
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (mdir / "model.onnx").read_bytes()


def test_predict_cli_on_a_csv_with_string_labels(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 90
    X = rng.normal(size=(n, 3))
    kinds = np.array(["cat", "ant", "bee"])
    y = kinds[np.argmax(X @ rng.normal(size=(3, 3)), axis=1)]
    lines = ["a,b,c,kind"] + [f"{X[i, 0]},{X[i, 1]},{X[i, 2]},{y[i]}" for i in range(n)]
    data = tmp_path / "animals.csv"
    data.write_text("\n".join(lines) + "\n")
    _train(tmp_path, "run", "--data", str(data), "--source", "gaussian")
    capsys.readouterr()
    mdir = tmp_path / "run-model"
    assert main(["predict", "--model", str(mdir), "--data", str(data), "--out",
                 str(tmp_path / "pred.csv"), "--plot", str(tmp_path / "cm.png")]) == 0
    out = capsys.readouterr().out
    exp = load_exported(mdir)
    assert exp.classes == ("ant", "bee", "cat")
    _, pred = predict(exp, X)
    truth = np.array([exp.classes.index(v) for v in y])
    m = re.search(r"accuracy ([0-9.]+) \((\d+)/90\)", out)
    assert int(m.group(2)) == int((pred == truth).sum())
    rows = (tmp_path / "pred.csv").read_text().splitlines()
    assert rows[0] == "row,class_index,class,p_ant,p_bee,p_cat" and len(rows) == n + 1
    assert [r.split(",")[2] for r in rows[1:]] == [exp.classes[k] for k in pred]
    assert (tmp_path / "cm.png").stat().st_size > 1000
    diag = re.findall(r"^\s*(ant|bee|cat)\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.M)
    assert sum(int(r[1 + i]) for i, r in enumerate(diag)) == int(m.group(2))
    # bad input: a missing feature column, a label the model does not know, no model
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,kind\n1,2,ant\n")
    assert main(["predict", "--model", str(mdir), "--data", str(bad)]) == 2
    assert "lacks the model's feature column(s) c" in capsys.readouterr().err
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c,kind\n1,2,3,dog\n")
    assert main(["predict", "--model", str(mdir), "--data", str(odd)]) == 2
    assert "label 'dog' of row 0 (from 0) is not one of the model's classes ant, bee, cat" \
        in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), "--data", str(data)]) == 2
    assert "holds no exported model (model.json missing)" in capsys.readouterr().err
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "log.json").write_text(json.dumps({"config": {"dataset": "wine"}}))
    assert main(["export", str(tmp_path / "old")]) == 2
    assert "holds no trained parameters" in capsys.readouterr().err
