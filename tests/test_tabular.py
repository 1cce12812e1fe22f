"""Your own data (issue 26, data in): CSV, Parquet and .npz files and sklearn:NAME through
pezo.host.tabular and the built-in sets' split (pezo.host.data), against the built-in loader on
the same arrays; every bad-data case fails with a message naming the row or column, before
any training."""

import json
import re

import numpy as np
import pytest

from pezo.host.data import DataError, load_dataset
from pezo.host.tabular import read_table


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """digits written as a CSV (64 feature columns, the label last), in sklearn's row order."""
    import pandas as pd
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])
    df["digit"] = y
    path = tmp_path_factory.mktemp("data") / "digits.csv"
    df.to_csv(path, index=False)
    return path


def _same(a, b):
    for k in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "mean", "scale"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k


def test_csv_of_a_known_set_gives_the_built_in_split_and_the_same_run(digits_csv, tmp_path):
    from pezo.host.train import TrainConfig, train
    own = load_dataset(str(digits_csv))
    _same(own, load_dataset("digits"))
    assert own.classes == tuple(range(10)) and own.features[:2] == ("px0", "px1")
    runs = [train(TrainConfig(dataset=d, steps=30, eval_every=10, source="gaussian", lr=5e-3,
                              mu=5e-3, batch=64),
                  progress=False) for d in ("digits", str(digits_csv))]
    assert [p["val_loss"] for p in runs[0].curve] == [p["val_loss"] for p in runs[1].curve]
    assert runs[0].test_acc == runs[1].test_acc
    assert len(runs[0].params) == 650 and runs[0].params == runs[1].params   # the same weights
    assert runs[1].data["classes"] == list(range(10)) and runs[1].data["sizes"]["train"] == 1077
    assert not runs[0].data


def test_npz_parquet_and_sklearn_names_read_the_same_arrays(tmp_path):
    from sklearn.datasets import load_wine
    import pandas as pd
    X, y = load_wine(return_X_y=True)
    np.savez(tmp_path / "wine.npz", X=X, y=y)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    df.insert(0, "cultivar", np.array(["a", "b", "c"])[y])      # label first, strings
    df.to_parquet(tmp_path / "wine.parquet")
    ref = load_dataset("wine")
    _same(load_dataset(str(tmp_path / "wine.npz")), ref)
    pq = load_dataset(str(tmp_path / "wine.parquet"), label="cultivar")
    _same(pq, ref)
    assert pq.classes == ("a", "b", "c")
    sk = load_dataset("sklearn:wine")
    _same(sk, ref)
    assert sk.classes == ("class_0", "class_1", "class_2")
    iris = load_dataset("sklearn:iris")
    assert iris.n_features == 4 and iris.n_classes == 3 and iris.classes[0] == "setosa"


def test_string_labels_map_to_sorted_classes_and_a_split_file_is_honoured(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    X = rng.normal(size=(n, 3))
    names = np.array(["cat", "ant", "bee"])
    y = names[np.arange(n) % 3]
    lines = ["a,b,c,kind"] + [f"{X[i, 0]},{X[i, 1]},{X[i, 2]},{y[i]}" for i in range(n)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    words = ["train"] * 18 + ["val"] * 6 + ["test"] * 6
    (tmp_path / "split.txt").write_text("# rows in file order\n" + "\n".join(words) + "\n")
    ds = load_dataset(str(tmp_path / "t.csv"), split=str(tmp_path / "split.txt"))
    assert ds.classes == ("ant", "bee", "cat")
    assert ds.sizes() == {"train": 18, "val": 6, "test": 6}
    # the rows kept their split: the test rows are the file's last six, standardised with the
    # training rows' statistics
    mean, sd = X[:18].mean(axis=0), X[:18].std(axis=0)
    assert np.allclose(ds.X_test, (X[24:] - mean) / sd)
    assert ds.y_test.tolist() == [{"ant": 0, "bee": 1, "cat": 2}[v] for v in y[24:]]


def _csv(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


GOOD_ROWS = "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(40))
FIRST_10 = "".join(GOOD_ROWS.splitlines(keepends=True)[:10])


@pytest.mark.parametrize("text,label,message", [
    ("", None, r"is empty$"),
    ("a,b,y\n", None, r"has a header but no rows$"),
    ("a,b,y\n" + FIRST_10 + "1,nan,0\n" + GOOD_ROWS, None,
     r"feature 'b' is nan at line 12; accepted: finite numbers"),
    ("a,b,y\n" + FIRST_10 + "1,inf,0\n" + GOOD_ROWS, None, r"feature 'b' is inf at line 12"),
    ("a,b,y\n" + "1,,0\n" + GOOD_ROWS, None, r"feature 'b' is nan at line 2"),
    ("a,b,y\n" + GOOD_ROWS + "x7,1,0\n", None,
     r"Feature column 'a' of .* is not numeric: line 42 holds 'x7'"),
    ("a,b,y\n" + GOOD_ROWS, "kind", r"Label column 'kind' is not in .*; its columns: a, b, y$"),
    ("a,b,y\n" + "".join(f"{i},{i},3\n" for i in range(40)), None,
     r"every sample has label 3; a classifier needs two or more classes"),
    ("a,b,y\n" + "1,2,0\n2,3,1\n3,1,0\n4,4,1\n", None,
     r"class 0 has 2 sample\(s\); the stratified 60/20/20 split needs at least 5"),
    ("a,b,y\n" + GOOD_ROWS + "1,2,\n", None, r"Label column 'y' of .* is empty at line 42"),
    ("a\n1\n2\n", None, r"has 1 column\(s\)"),
], ids=["empty", "no-rows", "nan", "inf", "empty-cell", "non-numeric", "no-label-column",
        "one-class", "too-few", "empty-label", "one-column"])
def test_bad_csv_is_refused_naming_why(tmp_path, text, label, message):
    with pytest.raises(DataError, match=message):
        load_dataset(_csv(tmp_path, text), label=label)


def test_bad_files_and_splits_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"unknown type '.txt'; accepted: .csv, .parquet, .npz"):
        read_table(str(tmp_path / "x.txt"))
    with pytest.raises(DataError, match=r"does not exist$"):
        read_table(str(tmp_path / "missing.csv"))
    np.savez(tmp_path / "a.npz", features=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"lacks array\(s\) X; it holds features, y"):
        read_table(str(tmp_path / "a.npz"))
    with pytest.raises(DataError, match=r"must be one of iris, wine, digits, breast_cancer, "
                                        r"not 'boston'"):
        read_table("sklearn:boston")
    path = _csv(tmp_path, "a,b,y\n" + GOOD_ROWS)
    bad_word = tmp_path / "s1.txt"
    bad_word.write_text("train\n" * 20 + "valid\n" + "test\n" * 19)
    with pytest.raises(DataError, match=r"s1.txt, line 21: 'valid'; accepted: train, val, test"):
        load_dataset(path, split=str(bad_word))
    short = tmp_path / "s2.txt"
    short.write_text("train\n" * 39)
    with pytest.raises(DataError, match=r"names 39 rows; the data has 40"):
        load_dataset(path, split=str(short))
    absent = tmp_path / "s3.txt"          # the val rows hold only class 0
    absent.write_text("".join("val\n" if i in (0, 2, 4) else ("test\n" if i < 10 else "train\n")
                              for i in range(40)))
    with pytest.raises(DataError, match=r"class 1 is absent from the val split \(3 rows\)"):
        load_dataset(path, split=str(absent))
    with pytest.raises(ValueError, match=r"apply to your own data files, not to the built-in "
                                         r"set 'wine'"):
        load_dataset("wine", label="y")


def test_pezo_train_with_own_data_writes_the_class_mapping(tmp_path, capsys):
    from pezo.cli import main
    rows = "".join(f"{i % 7},{(i * 3) % 5},{['no', 'yes'][i % 2]}\n" for i in range(60))
    path = _csv(tmp_path, "a,b,answer\n" + rows, "yes.csv")
    assert main(["train", "--data", path, "--steps", "20", "--source", "gaussian",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "classes 0 = 'no', 1 = 'yes'" in out
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert log["data"]["classes"] == ["no", "yes"] and log["config"]["dataset"] == path
    for argv, msg in ((["--data", path, "--dataset", "wine"], "not both"),
                      (["--label", "answer"], r"--label applies to your own data"),
                      (["--data", str(tmp_path / "x.txt")], r"must be a .csv, .parquet or .npz"),
                      (["--data", path, "--label", "nope"], r"Label column 'nope' is not in")):
        out = tmp_path / "never"
        assert main(["train", "--steps", "5", "--no-progress", "--out", str(out), "--export",
                     str(out / "model")] + argv) == 2
        err = capsys.readouterr().err
        assert re.search(r"^pezo train: error: .*" + msg, err), err
        assert not out.exists()                          # nothing written


@pytest.mark.parametrize("text", ["", "a,b,y\n" + FIRST_10 + "1,nan,0\n" + GOOD_ROWS,
                                  "a,b,y\n" + GOOD_ROWS + "x7,1,0\n"],
                         ids=["empty", "nan", "non-numeric"])
def test_bad_data_through_the_cli_writes_nothing(tmp_path, capsys, text):
    from pezo.cli import main
    path = _csv(tmp_path, text)
    out = tmp_path / "run"
    assert main(["train", "--data", path, "--steps", "5", "--no-progress", "--out", str(out),
                 "--export", str(out / "model")]) == 2
    assert capsys.readouterr().err.startswith("pezo train: error: ")
    assert not out.exists()
