"""dockyard: a daemonless, rootless-capable container engine in Python."""

__version__ = "0.1.0"
# Docker Engine API version the API server and `version` report.
API_VERSION = "1.51"
