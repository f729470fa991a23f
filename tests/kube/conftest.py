"""kube tests use the pod tests' fixtures (which remove every pod and volume before the container
fixtures check that nothing is left)."""

from tests.pods.conftest import busybox_image, ctr, pod_ctr  # noqa: F401 - fixtures used by these tests
