"""`pezo export RUN_DIR` and `pezo predict --model DIR --data FILE` (issue 26, model out;
docs/training.md, "Your model out")."""

import json
from pathlib import Path

import numpy as np

from pezo.host.export import export_run, load_exported, predict
from pezo.host.tabular import DataError, read_features

__all__ = ["register", "confusion", "print_export"]


def register(sub):
    e = sub.add_parser("export", help="write a trained run's model (npz, $readmemh hex, Python "
                                      "list, ONNX) from its log.json")
    e.add_argument("run", metavar="RUN_DIR", help="a `pezo train --out DIR` folder (log.json)")
    e.add_argument("--out", "-o", metavar="DIR", default=None,
                   help="where to write the model (default RUN_DIR/model)")
    e.set_defaults(func=cmd_export)
    p = sub.add_parser("predict", help="predictions of an exported model on a data file; with "
                                       "labels, accuracy and a confusion matrix")
    p.add_argument("--model", "-m", metavar="DIR", required=True,
                   help="an exported model's folder (pezo train --export DIR, pezo export)")
    p.add_argument("--data", metavar="FILE", required=True,
                   help=".csv or .parquet with the model's feature columns (a label column is "
                        "optional), .npz (X, optional y) or sklearn:NAME")
    p.add_argument("--label", metavar="COLUMN", default=None,
                   help="the label column (default: the one column that is not a feature)")
    p.add_argument("--out", "-o", metavar="FILE", default=None,
                   help="write the predictions as CSV (row, class index, class, probabilities)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="with labels: the confusion matrix as a PNG")
    p.set_defaults(func=cmd_predict)


def print_export(files):
    print("written " + ", ".join(str(p) for p in files.values()))


def cmd_export(args):
    run = Path(args.run)
    log = run / "log.json"
    if not log.is_file():
        raise ValueError(f"{run} holds no log.json: give a `pezo train --out DIR` folder")
    files = export_run(json.loads(log.read_text()), args.out or run / "model")
    print_export(files)
    return 0


def confusion(y, pred, k):
    """Counts (k x k): row = true class, column = predicted."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (np.asarray(y), np.asarray(pred)), 1)
    return m


def cmd_predict(args):
    exp = load_exported(args.model)
    X, labels = read_features(args.data, exp.features, args.label)
    prob, pred = predict(exp, X)
    names = list(exp.classes)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        head = "row,class_index,class," + ",".join(f"p_{c}" for c in names)
        rows = [f"{i},{k},{names[k]}," + ",".join(f"{v:.6g}" for v in prob[i])
                for i, k in enumerate(pred)]
        out.write_text(head + "\n" + "\n".join(rows) + "\n")
        print(f"written {out} ({len(pred)} predictions)")
    else:
        for i, k in enumerate(pred[:20]):
            print(f"row {i}: {names[k]} ({prob[i, k]:.3f})")
        if len(pred) > 20:
            print(f"... {len(pred) - 20} more rows (--out FILE writes them all)")
    if labels is None:
        return 0
    index = {str(c): k for k, c in enumerate(names)}
    y = []
    for i, v in enumerate(labels):
        if str(v) not in index:
            raise DataError(f"{args.data}: label {v!r} of row {i} (from 0) is not one of the "
                            f"model's classes {', '.join(map(str, names))}")
        y.append(index[str(v)])
    y = np.asarray(y)
    m = confusion(y, pred, len(names))
    print(f"accuracy {float((pred == y).mean()):.4f} ({int((pred == y).sum())}/{len(y)})")
    print("confusion matrix (rows: true class, columns: predicted)")
    w = max(len(str(c)) for c in names)
    print(" " * (w + 1) + " ".join(f"{str(c):>{w}}" for c in names))
    for c, row in zip(names, m):
        print(f"{str(c):>{w}} " + " ".join(f"{v:>{w}}" for v in row))
    if args.plot:
        # lazy import: matplotlib is heavy and needed only here
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(1 + 0.5 * len(names), 1 + 0.5 * len(names)))
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(names)), [str(c) for c in names], rotation=90)
        ax.set_yticks(range(len(names)), [str(c) for c in names])
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"written {args.plot}")
    return 0
