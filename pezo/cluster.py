"""The one way this project reaches Dask distributed: :func:`dask_client`.

Every command that farms work out (DistZO2 training, ``pezo sweep``, ``make compare``) takes a
scheduler address or a worker count and calls :func:`dask_client`:

* ``scheduler=None`` starts a :class:`distributed.LocalCluster` on this machine (``workers``
  single-threaded worker processes; its dashboard on a free port, so two clusters on one machine
  never collide) and closes it when the ``with`` block ends;
* ``scheduler="tcp://HOST:PORT"`` connects to a running scheduler (``dask scheduler`` and
  ``dask worker tcp://HOST:PORT`` started by hand or by a cluster manager; docs/distributed.md).

An unreachable scheduler or a bad address is a :class:`ClusterError` naming the address and what
is accepted, after ``timeout`` seconds, never a hang.
"""

import contextlib
import re

__all__ = ["ClusterError", "dask_client", "check_scheduler", "check_workers"]

_ADDRESS = re.compile(r"^(tcp|tls|inproc)://[^\s/:]+(:\d{1,5})?$")


class ClusterError(RuntimeError):
    """The Dask cluster could not be reached or started."""


def check_scheduler(address):
    """``address`` as a scheduler address string (``tcp://HOST:PORT``), or ValueError."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise ValueError(f"Scheduler address must look like tcp://HOST:PORT, not {address!r}")
    return address


def check_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"Worker count must be a positive integer, not {workers!r}")
    return workers


@contextlib.contextmanager
def dask_client(scheduler=None, workers=2, timeout=30.0):
    """A connected :class:`distributed.Client` (context manager).

    Parameters
    ----------
    scheduler : str or None
        ``tcp://HOST:PORT`` of a running scheduler; None starts a LocalCluster of ``workers``
        processes with one thread each (the work here is NumPy and simulator code that holds
        the GIL, so processes, not threads, run it in parallel).
    workers : int
        LocalCluster worker processes (ignored with ``scheduler``).
    timeout : float
        Seconds to wait for the scheduler (and, with ``scheduler``, for one worker).

    Raises
    ------
    ValueError
        A malformed address or worker count.
    ClusterError
        No scheduler answers at ``scheduler`` within ``timeout``, or it has no worker.
    """
    from distributed import Client, LocalCluster

    if scheduler is None:
        check_workers(workers)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=40) as cluster, \
                Client(cluster) as client:
            yield client
        return
    check_scheduler(scheduler)
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"No Dask scheduler answered at {scheduler} within {timeout:g} s "
                           f"({e}); start one with `dask scheduler` (docs/distributed.md) or "
                           f"leave out --scheduler to use a local cluster") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(f"The Dask scheduler at {scheduler} has no worker after "
                               f"{timeout:g} s; start one with `dask worker {scheduler}`") from None
        yield client
    finally:
        client.close()
