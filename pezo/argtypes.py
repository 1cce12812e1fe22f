"""argparse argument types and progress output shared by the command lines (``pezo``, its
studies)."""

import argparse
import sys

__all__ = ["positive_int", "progress_printer"]


def progress_printer(tag=None):
    """A ``progress(msg)`` callback printing ``[tag] msg`` (or ``msg``) to stderr at once, so
    progress never mixes with a command's results on stdout."""
    prefix = f"[{tag}] " if tag else ""

    def say(msg):
        print(prefix + str(msg), file=sys.stderr, flush=True)
    return say


def positive_int(text):
    """argparse type: a positive integer (decimal or 0x...)."""
    try:
        value = int(text, 0)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value
