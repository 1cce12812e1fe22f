"""argparse argument types and progress output shared by the command lines (``pezo``, its
studies)."""

import argparse
import sys

__all__ = ["positive_int", "non_negative_int", "positive_seconds", "tcp_port", "progress_printer"]


def progress_printer(tag=None):
    """A ``progress(msg)`` callback printing ``[tag] msg`` (or ``msg``) to stderr at once, so
    progress never mixes with a command's results on stdout."""
    prefix = f"[{tag}] " if tag else ""

    def say(msg):
        print(prefix + str(msg), file=sys.stderr, flush=True)
    return say


def _int_in(text, lo, hi, what):
    """``text`` as an integer (decimal or 0x...) in lo..hi (hi None: no bound), else an argparse
    error ``must be <what>, not '<text>'``."""
    try:
        value = int(text, 0)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def positive_int(text):
    """argparse type: a positive integer (decimal or 0x...)."""
    return _int_in(text, 1, None, "a positive integer")


def non_negative_int(text):
    """argparse type: an integer >= 0 (decimal or 0x...)."""
    return _int_in(text, 0, None, "a non-negative integer")


def positive_seconds(text):
    """argparse type: a duration in seconds, a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def tcp_port(text):
    """argparse type: a TCP port number, 0..65535 (0: any free port, the system's choice)."""
    return _int_in(text, 0, 65535, "a TCP port in 0..65535 (0: any free port)")
