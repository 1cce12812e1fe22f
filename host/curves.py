"""Writing training runs out: the JSON log and learning-curve plots (``pezo train --out``)."""

import json
from pathlib import Path

from pezo.host.train import TrainResult

__all__ = ["write_log", "plot_curves"]


def write_log(result, path):
    """The run as JSON (config, learning curve, final figures, timing, engine statistics)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = result.to_dict() if isinstance(result, TrainResult) else result
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def plot_curves(results, path, title=None, labels=None):
    """Learning curves (train loss and validation accuracy against step) of one or more runs,
    as a PNG (matplotlib, Agg backend)."""
    # lazy import: matplotlib is heavy and needed only here
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if isinstance(results, (TrainResult, dict)):
        results = [results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, r in enumerate(results):
        d = r.to_dict() if isinstance(r, TrainResult) else r
        steps = [p["step"] for p in d["curve"]]
        label = labels[i] if labels else d["source"]
        a.plot(steps, [p["train_loss"] for p in d["curve"]], label=label)
        b.plot(steps, [p["val_acc"] for p in d["curve"]], label=label)
    a.set_xlabel("step")
    a.set_ylabel("train loss (full split)")
    b.set_xlabel("step")
    b.set_ylabel("validation accuracy")
    a.grid(alpha=0.3)
    b.grid(alpha=0.3)
    b.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
