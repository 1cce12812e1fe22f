"""argparse argument types shared by the command lines (``pezo``, its studies)."""

import argparse

__all__ = ["positive_int"]


def positive_int(text):
    """argparse type: a positive integer (decimal or 0x...)."""
    try:
        value = int(text, 0)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value
