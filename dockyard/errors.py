"""One error hierarchy for the whole engine.

The CLI maps these to Docker's exit codes and the API server to HTTP statuses, each in one place,
so engine code raises the meaning of a failure and never picks a number itself.
"""

from __future__ import annotations

# Docker's documented exit codes for `docker run` and friends.
EXIT_ENGINE = 125  # the engine itself failed (bad flag, unknown image, ...)
EXIT_CANNOT_INVOKE = 126  # the command exists but cannot be executed
EXIT_NOT_FOUND = 127  # the command does not exist in the container


class DockyardError(Exception):
    """Base class: a failure with a one-line message meant for the user."""

    exit_code = EXIT_ENGINE
    http_status = 500


class NotFound(DockyardError):
    http_status = 404


class Conflict(DockyardError):
    """Name in use, object in use, wrong state for the operation."""

    http_status = 409


class InvalidArgument(DockyardError):
    http_status = 400


class StoreError(DockyardError):
    """The on-disk store is unreadable, locked for too long, or from a newer dockyard."""


class CannotInvoke(DockyardError):
    exit_code = EXIT_CANNOT_INVOKE


class CommandNotFound(DockyardError):
    exit_code = EXIT_NOT_FOUND


class Unsupported(DockyardError):
    """The host lacks something the request needs (a cgroup controller, overlayfs, ...)."""

    http_status = 501
