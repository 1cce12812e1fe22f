import os

from pezo.toolchain import setup_environment

setup_environment()


def pytest_collection_modifyitems(config, items):
    """Long regression tests run only in `make regress` (PEZO_REGRESS=1); elsewhere they are
    deselected (reported as such), not skipped."""
    if os.environ.get("PEZO_REGRESS"):
        return
    keep = [i for i in items if "regress" not in i.keywords]
    dropped = [i for i in items if "regress" in i.keywords]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
