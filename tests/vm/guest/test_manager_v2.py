"""The cgroup manager tests of tests/runtime/test_cgroups.py, run again where ``manager()`` picks
the v2 manager and every controller is available (on the hybrid CI host they exercise v1)."""

from tests.runtime.test_cgroups import *  # noqa: F403  (re-collected here: same tests, pure v2 host)
