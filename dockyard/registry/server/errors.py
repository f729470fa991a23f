"""The error codes of the OCI distribution specification, each with the HTTP status it travels with.

Handlers raise these; the app turns them into ``{"errors": [{"code", "message", "detail"}]}``.
"""

from __future__ import annotations

from typing import Any

from dockyard.errors import DockyardError

# code -> (HTTP status, the spec's default message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "RANGE_INVALID": (416, "invalid content range"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "NOT_FOUND": (404, "not found"),
}


class RegistryError(DockyardError):
    def __init__(self, code: str, message: str | None = None, detail: Any = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        default_status, default_message = CODES[code]
        self.headers = headers or {}
        self.code = code
        self.message = message or default_message
        self.detail = detail
        self.http_status = status or default_status
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        return {"errors": [err]}
