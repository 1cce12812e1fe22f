"""Formal checks (pezo.formal) at the depths of `make test` (`make formal` runs the full ones), and
a broken harness the flow must refute (so a PASS is not the flow failing to check anything)."""

import pytest

from pezo.formal import CHECKS, MAC_DONE, Check, mac_restore, run_check

pytestmark = pytest.mark.formal


# The bridge's liveness check takes about 6 CPU-minutes even at its shallow depth (the COBS
# decoder's state space): it runs in `make regress` and `make formal`, not in `make test`.
SLOW = {"bridge_live"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.regress) if n in SLOW else n
                                  for n in CHECKS])
def test_formal_check_passes_at_shallow_depth(name, tmp_path):
    r = run_check(name, shallow=True, root=tmp_path)
    assert r["status"] == "PASS", f"{name}: {r['tail']}"
    assert r["depth"] == CHECKS[name].shallow_depth


def test_a_broken_restore_property_is_refuted(tmp_path):
    """The same MAC harness with the -2mu pass replaced by +mu: the solver finds weights for which
    the weight does not come back (w + 3p != w for p != 0)."""
    broken = Check("mac_broken", lambda: mac_restore(broken=True), "bmc", MAC_DONE + 4,
                   MAC_DONE + 4, "refuted on purpose")
    r = run_check(broken, root=tmp_path)
    assert r["status"] == "FAIL"
    assert "Assert failed" in open(r["log"]).read()


def test_unknown_check_is_named():
    with pytest.raises(ValueError, match="Formal check must be one of lfsr_nonzero, mac_restore, "
                                         "bridge_live, bridge_guarded_writes, not 'nope'"):
        run_check("nope")
