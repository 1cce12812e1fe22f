"""DistZO2 training on Dask (pezo.host.dist): every layout gives the plain trainer's weights bit
for bit, divergence is caught, errors name the bad value, only scalars cross the network, and the
cluster path works against a scheduler and workers started as separate processes."""

import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from pezo.cli import main
from pezo.cluster import ClusterError, dask_client
from pezo.host.dist import (DivergenceError, Replica, _owned, chunk_bounds, parse_layout,
                            train_dist)
from pezo.host.models import make_model
from pezo.host.data import load_dataset
from pezo.host.perturb import make_source
from pezo.host.train import TrainConfig, train

#: A short run that exercises q > 1, weight decay, coefficient clipping, empty chunks (batch 4 <
#: 8 chunks), early stopping (best validation loss at step 20, stop at 35) and the restore of the
#: best weights.
RUN = dict(dataset="digits", model="mlp", hidden=8, steps=40, batch=4, q=2, weight_decay=1e-3,
           lr=0.05, eval_every=5, patience=3)


@pytest.fixture(scope="module")
def client():
    with dask_client(None, workers=2) as c:
        yield c


def plain_hash(**kw):
    """The plain trainer (no Dask) on its own engine; BLAKE2b-64 of every raw weight word as
    int64 (the hash the replicas report, computed here independently)."""
    cfg = TrainConfig(**kw).resolved()
    ds = load_dataset(cfg.dataset)
    model = make_model(cfg.model, ds.n_features, ds.n_classes, cfg.hidden, cfg.activation)
    src = make_source(cfg.source, model.n_params, lanes=cfg.lanes)
    res = train(cfg, src=src)
    if cfg.source in ("gaussian", "uniform"):
        raw = np.asarray(src.params(), dtype=np.float64)
    else:
        raw = np.asarray(src.eng.read_weights(raw=True), dtype=np.int64)
    return res, hashlib.blake2b(raw.tobytes(), digest_size=8).hexdigest()


def test_every_branch_and_chunk_is_owned_exactly_once():
    """The layout partitions the work: each (branch, chunk) of the minibatch belongs to exactly
    one worker, for every P and D up to the chunk count, and the chunks tile the batch."""
    for chunks in (1, 3, 8):
        for P in (1, 2):
            for D in range(1, chunks + 1):
                seen = [(b, k) for r in range(P * D) for b in _owned(r, P, D, chunks)[0]
                        for k in _owned(r, P, D, chunks)[1]]
                assert sorted(seen) == [(b, k) for b in (0, 1) for k in range(chunks)]
        for batch in (0, 5, 64, 1077):
            b = chunk_bounds(batch, chunks)
            sizes = [hi - lo for lo, hi in b]
            assert [lo for lo, _ in b[1:]] == [hi for _, hi in b[:-1]]      # contiguous
            assert b[0][0] == 0 and b[-1][1] == batch and max(sizes) - min(sizes) <= 1


def test_layouts_are_bit_identical_to_the_plain_trainer(client):
    """1x1, 2x1 (L+ and L- on different workers) and 1x2 (two data shards) end with the same
    engine words as plain `train` of the same settings (hashed here, not by the code under test),
    with the same learning curve and test accuracy; every worker holds them."""
    ref, want = plain_hash(**RUN)
    assert (ref.best_step, ref.steps_run, ref.stopped_early) == (20, 35, True)
    for layout in ("1x1", "2x1", "1x2"):
        r = train_dist(client=client, layout=layout, check_every=10, **RUN)
        assert r.worker_hashes == [want] * len(r.worker_hashes), layout
        assert [p["val_loss"] for p in r.curve] == [p["val_loss"] for p in ref.curve], layout
        assert (r.test_acc, r.best_step, r.steps_run, r.stopped_early, r.stats) == \
            (ref.test_acc, ref.best_step, ref.steps_run, ref.stopped_early, ref.stats)
        assert r.hash_checks == 5       # start, steps 10, 20, 30, end
    # float weights show every last-bit difference of the losses: the layouts' reductions agree
    hashes = [train_dist(client=client, layout=layout, **dict(RUN, source="gaussian")).worker_hashes
              for layout in ("1x1", "2x1", "1x2")]
    assert len({h for hs in hashes for h in hs}) == 1, hashes


def test_two_dimensional_layouts_on_four_workers():
    """2x2 (both parallelisms) and 1x3 (a shard count that does not divide the chunks) on a
    4-worker cluster: the plain trainer's engine words on every worker (workers 2 and 3 evaluate
    no split, yet must restore the best weights too), and the Gaussian source's float weights
    equal to 1x1's."""
    ref, want = plain_hash(**RUN)
    with dask_client(None, workers=4) as c:
        r = train_dist(client=c, layout="2x2", check_every=10, **RUN)
        assert r.worker_hashes == [want] * 4 and r.test_acc == ref.test_acc
        g = [train_dist(client=c, layout=lay, **dict(RUN, source="gaussian")).worker_hashes
             for lay in ("1x1", "1x3")]
    assert len(set(g[0] + g[1])) == 1 and len(g[1]) == 3


def test_bytes_per_step_do_not_grow_with_the_model(client):
    """Only loss sums travel: the same bytes per step for d = 650 and d = 19,210, a few hundred
    bytes against 8 d bytes of weights."""
    small = train_dist(client=client, layout="2x1", dataset="digits", model="logreg", steps=5)
    big = train_dist(client=client, layout="2x1", dataset="digits", model="mlp", hidden=256,
                     steps=5)
    assert (small.n_params, big.n_params) == (650, 19210)
    assert small.bytes_per_step == big.bytes_per_step < 1000


def _corrupt_rank_1(dask_worker):
    """Add one LSB to a weight word of the newest rank-1 replica on this worker (if it holds
    one; replicas of finished runs may linger until the scheduler has them forgotten)."""
    mine = [(int(key.rsplit("-", 1)[1]), a) for key, a in dask_worker.state.actors.items()
            if isinstance(a, Replica) and a.rank == 1]
    if not mine:
        return False
    eng = max(mine, key=lambda x: x[0])[1].source.eng
    w = eng.read_weights(raw=True)
    w[3] += 1
    eng.write_weights(w, raw=True)
    return True


def test_a_diverged_worker_stops_the_run_with_both_hashes(client):
    """A worker whose weights drift (one weight word changed after step 10) is caught at the
    next check (step 20), and the error names the step, both workers and their hashes."""
    done = []

    def log(point):
        if not done:
            done.append(client.run(_corrupt_rank_1))

    with pytest.raises(DivergenceError) as e:
        train_dist(client=client, layout="2x1", steps=40, eval_every=10, check_every=20, log=log,
                   dataset="digits", model="logreg")
    assert sorted(done[0].values()) == [False, True]
    assert re.match(r"^Replicas diverged by step 20: their weights differ \(hash [0-9a-f]{16} on "
                    r"worker 0 \(tcp://127\.0\.0\.1:\d+\); hash [0-9a-f]{16} on worker 1 "
                    r"\(tcp://127\.0\.0\.1:\d+\)\)\. Every worker applies the same seeded "
                    r"updates", str(e.value)), str(e.value)


@pytest.mark.parametrize("layout", ["3x1", "3x", "0x2", "2x0", "x", "2*1", 2, None])
def test_bad_layouts_are_refused(layout):
    with pytest.raises(ValueError, match=rf"^Layout must be PxD with P in 1\.\.2 and D >= 1, not "
                                         rf"{re.escape(repr(layout))}$"):
        parse_layout(layout)
    assert parse_layout(" 2x3 ") == (2, 3) and parse_layout("1X1") == (1, 1)


def test_bad_settings_are_refused_before_any_cluster():
    for kw, msg in ((dict(layout="1x4", chunks=2), r"^Chunk count \(chunks\) must be an integer "
                     r">= 4, not 2$"),
                    (dict(check_every=0), r"^Check interval \(check_every\) must be an integer "
                     r">= 1, not 0$"),
                    (dict(algo="ranksgd"), r"^Distributed training runs algo 'mezo' only, not "
                     r"'ranksgd'$"),
                    (dict(source="board"), r"^Source 'board' needs a serial port \(--port "),
                    (dict(source="board", port="a,b,c"), r"^Source 'board' on 2 workers needs "
                     r"one port for all or 2 comma-separated ports \(one per worker\), not "
                     r"'a,b,c'$"),
                    (dict(scheduler="localhost:8786"), r"^Scheduler address must look like "
                     r"tcp://HOST:PORT, not 'localhost:8786'$")):
        with pytest.raises(ValueError, match=msg):
            train_dist(**kw)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_cluster_error_not_a_hang():
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=rf"^No Dask scheduler answered at "
                                           rf"tcp://127\.0\.0\.1:{port} within 2 s"):
        train_dist(scheduler=f"tcp://127.0.0.1:{port}", timeout=2.0, steps=3)
    assert time.monotonic() - t0 < 20


def test_cli_errors_name_the_value(capsys):
    assert main(["train", "--layout", "3x", "--steps", "3", "--no-progress"]) == 2
    assert "pezo train: error: Layout must be PxD with P in 1..2 and D >= 1, not '3x'" \
        in capsys.readouterr().err
    assert main(["train", "--check-every", "5", "--steps", "3", "--no-progress"]) == 2
    assert "--check-every applies to distributed training only" in capsys.readouterr().err


@contextlib.contextmanager
def separate_cluster(workers=2):
    """`dask scheduler` and ``workers`` `dask worker` processes on 127.0.0.1 (free ports, one
    thread each), each in its own session; killed (process group) however the test ends."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = []

    def start(*args):
        procs.append(subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=env, start_new_session=True))
    try:
        start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
              "--no-dashboard")
        for _ in range(workers):
            start("distributed.cli.dask_worker", addr, "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--death-timeout", "60")
        yield addr
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def test_a_separately_started_cluster_trains_like_the_plain_trainer():
    """The cluster path: a scheduler and two workers as separate processes, reached by address
    (`--scheduler`), train 2x1 to the plain trainer's weights on both workers; a layout needing
    more workers than the scheduler has is a ClusterError after the timeout."""
    kw = dict(dataset="digits", model="logreg", steps=30, eval_every=10)
    ref, want = plain_hash(**kw)
    with separate_cluster(2) as addr:
        r = train_dist(scheduler=addr, layout="2x1", check_every=10, timeout=60.0, **kw)
        with pytest.raises(ClusterError, match=r"^Layout needs 4 Dask workers; the scheduler has "
                                               r"2 after 2 s \(start more with `dask worker"):
            train_dist(scheduler=addr, layout="2x2", timeout=2.0, **kw)
        with dask_client(addr, timeout=30.0) as c:
            workers = sorted(c.scheduler_info(n_workers=-1)["workers"])
    assert r.worker_hashes == [want, want]
    assert r.workers == workers and len(set(workers)) == 2
    assert r.test_acc == ref.test_acc


def test_the_simulated_hardware_trains_distributed_like_the_golden_engine(client):
    """`pezo-sim` (the engine hardware in the Amaranth simulator) on each worker, 2x1: both end
    with the weights the plain trainer's golden engine reaches."""
    kw = dict(dataset="wine", model="logreg", steps=3, eval_every=3)
    ref, want = plain_hash(**kw)
    r = train_dist(client=client, layout="2x1", source="pezo-sim", **kw)
    assert r.source.startswith("pezo-sim") and r.worker_hashes == [want, want]
    assert r.test_acc == ref.test_acc
