"""The row `ps` renders: Docker's container placeholders over a container summary.

``ContainerRow`` wraps one entry of the Docker Engine API's container list (``GET /containers/json``:
Id, Names, Image, ImageID, Command, Created, Ports, Labels, State, Status, SizeRw, SizeRootFs, Mounts,
NetworkSettings) and answers ``.ID .Image .Command .CreatedAt .RunningFor .Ports .State .Status .Size
.Names .Labels .Label .Mounts .Networks .LocalVolumes`` the way Docker's CLI computes them, truncated
unless ``--no-trunc``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from dockyard.formatting.table import text_width

DEFAULT_TABLE = "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}"
QUIET = "{{.ID}}"

HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
}


def ps_format(fmt: str | None, quiet: bool = False, size: bool = False) -> str:
    """The template ``ps`` uses, as Docker picks it from --format, -q and -s."""
    if fmt in (None, "", "table"):
        if quiet:
            return QUIET
        return DEFAULT_TABLE + ("\\t{{.Size}}" if size else "")
    if quiet:
        return QUIET
    return fmt


_DEFAULT_COLUMNS = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")


def default_table(rows: list[ContainerRow], size: bool = False) -> str:
    """``ps`` without --format: what DEFAULT_TABLE renders, made without the template engine, which
    costs more than everything else `ps` does for a hundred containers."""
    from dockyard.formatting.table import tabwrite

    cols = _DEFAULT_COLUMNS + (("Size",) if size else ())
    lines = ["\t".join(HEADERS[c] for c in cols)]
    lines += ["\t".join([getattr(r, c)() for c in cols]) for r in rows]
    return tabwrite("\n".join(lines) + "\n")


def truncate_id(s: str) -> str:
    if ":" in s:
        s = s.split(":", 1)[1]
    return s[:12]


def ellipsis(s: str, max_width: int) -> str:
    """Shorten to ``max_width`` terminal columns, the last one an ellipsis."""
    if max_width <= 0:
        return ""
    if text_width(s) <= max_width:
        return s
    out, w = [], 0
    for ch in s:
        cw = text_width(ch)
        if w + cw > max_width - 1:
            break
        out.append(ch)
        w += cw
    return "".join(out) + "…"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, the words of ``RunningFor`` ("2 minutes", "About an hour")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(_round_half_away(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _round_half_away(x: float) -> float:
    return float(int(x + 0.5)) if x >= 0 else -float(int(-x + 0.5))


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``precision`` significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """Docker's port column: consecutive ports grouped into ranges, host mappings last."""
    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", ""))

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    host: list[str] = []
    for p in sorted(ports, key=key):
        current = int(p.get("PrivatePort", 0))
        typ = p.get("Type", "tcp")
        port_key = typ
        ip = p.get("IP") or ""
        if ip:
            public = int(p.get("PublicPort", 0))
            if public != current:
                host_ip = f"[{ip}]" if ":" in ip else ip
                host.append(f"{host_ip}:{public}->{current}/{typ}")
                continue
            port_key = f"{ip}/{typ}"
        g = groups.get(port_key)
        if g is None:
            groups[port_key] = [current, current]
            order.append(port_key)
            continue
        if current == g[1] + 1:
            g[1] = current
            continue
        result.append(_form_group(port_key, g[0], g[1]))
        groups[port_key] = [current, current]
    for k in order:
        result.append(_form_group(k, *groups[k]))
    return ", ".join(result + host)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, typ = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        host_ip = f"[{ip}]" if ":" in ip else ip
        group = f"{host_ip}:{group}->{group}"
    return f"{group}/{typ}"


class ContainerRow:
    """One `ps` row.  Methods are the template's fields; ``Label`` takes the label key."""

    go_type = "*formatter.ContainerContext"

    def __init__(self, summary: dict[str, Any], trunc: bool = True, now: float | None = None) -> None:
        self._c = summary
        self._trunc = trunc
        self._now = time.time() if now is None else now

    def ID(self) -> str:  # noqa: N802 - the template's field names are Go's
        cid = str(self._c.get("Id", ""))
        return truncate_id(cid) if self._trunc else cid

    def Names(self) -> str:  # noqa: N802
        names = [n.removeprefix("/") for n in self._c.get("Names") or []]
        if self._trunc:
            # Legacy link names ("/other/alias") are left out of the short form.
            return next((n for n in names if "/" not in n), "")
        return ",".join(names)

    def Image(self) -> str:  # noqa: N802
        image = str(self._c.get("Image") or "")
        if not image:
            return "<no image>"
        if not self._trunc:
            return image
        image_id = str(self._c.get("ImageID") or "")
        if image_id and truncate_id(image_id) == truncate_id(image):
            return truncate_id(image)
        if "@" in image:
            image = image.split("@", 1)[0]
        for prefix in ("docker.io/library/", "docker.io/"):
            if image.startswith(prefix):
                image = image[len(prefix):]
                break
        return image

    def Command(self) -> str:  # noqa: N802
        from dockyard.formatting.printing import quote

        cmd = str(self._c.get("Command") or "")
        return quote(ellipsis(cmd, 20) if self._trunc else cmd)

    def CreatedAt(self) -> str:  # noqa: N802
        t = datetime.fromtimestamp(int(self._c.get("Created") or 0)).astimezone()
        return t.strftime("%Y-%m-%d %H:%M:%S %z %Z")

    def RunningFor(self) -> str:  # noqa: N802
        return human_duration(self._now - int(self._c.get("Created") or 0)) + " ago"

    def Ports(self) -> str:  # noqa: N802
        return displayable_ports(self._c.get("Ports") or [])

    def State(self) -> str:  # noqa: N802
        return str(self._c.get("State") or "")

    def Status(self) -> str:  # noqa: N802
        return str(self._c.get("Status") or "")

    def Size(self) -> str:  # noqa: N802
        srw = human_size(float(self._c.get("SizeRw") or 0))
        root = float(self._c.get("SizeRootFs") or 0)
        return f"{srw} (virtual {human_size(root)})" if root > 0 else srw

    def Labels(self) -> str:  # noqa: N802
        labels = self._c.get("Labels") or {}
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return str((self._c.get("Labels") or {}).get(name, ""))

    def Mounts(self) -> str:  # noqa: N802
        names = []
        for m in self._c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self._trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:  # noqa: N802
        return str(sum(1 for m in self._c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:  # noqa: N802
        nets = ((self._c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))
