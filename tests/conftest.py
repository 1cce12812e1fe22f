import os

import pytest

from pezo.toolchain import setup_environment

setup_environment()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PEZO_REGRESS"):
        return
    skip = pytest.mark.skip(reason="long regression: run with `make regress` (PEZO_REGRESS=1)")
    for item in items:
        if "regress" in item.keywords:
            item.add_marker(skip)
