"""`pull` and `push`, with Docker's progress display (rich on a TTY, plain lines otherwise)."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import click

TLS_VERIFY_HELP = "Require HTTPS and verify certificates (default true); --tls-verify=false allows HTTP."


def tls_verify_option(f: Any) -> Any:
    return click.option("--tls-verify", type=click.BOOL, is_flag=False, flag_value=True, default=None,
                        metavar="BOOL", help=TLS_VERIFY_HELP)(f)


def registry_options(f: Any) -> Any:
    f = tls_verify_option(f)
    f = click.option("--creds", metavar="USER[:PASS]", help="Credentials for the registry.")(f)
    f = click.option("--authfile", metavar="PATH", help="Path of the auth file (default auth.json).")(f)
    f = click.option("--cert-dir", metavar="DIR", help="Directory with certificates (*.crt) for TLS.")(f)
    return f


def apply_registry_env(authfile: str | None, cert_dir: str | None) -> None:
    # Both are read where credentials and trust are looked up; the environment is how Podman passes them too.
    if authfile:
        os.environ["REGISTRY_AUTH_FILE"] = authfile
    if cert_dir:
        os.environ["DOCKYARD_CERT_DIR"] = os.path.abspath(cert_dir)


def parse_creds(creds: str | None) -> tuple[str, str] | None:
    if not creds:
        return None
    user, sep, password = creds.partition(":")
    if not sep:
        password = click.prompt("Password", hide_input=True, err=True)
    if not user:
        raise click.UsageError("--creds needs a username")
    return user, password


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}"


def _bar(cur: int, total: int, width: int = 50) -> str:
    if total <= 0:
        return ""
    filled = min(width, int(width * cur / total))
    arrow = ">" if filled < width else ""
    return "[" + "=" * max(0, filled - (1 if arrow else 0)) + arrow + " " * (width - filled) + "]"


class ProgressPrinter:
    """Renders engine Progress events like the Docker CLI does."""

    def __init__(self, quiet: bool = False, tty: bool | None = None) -> None:
        self.quiet = quiet
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.lock = threading.Lock()
        self.rows: dict[str, tuple[str, int, int]] = {}
        self.last_status: dict[str, str] = {}
        self.live: Any = None
        if self.tty and not quiet:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(highlight=False)
            self.live = Live(console=self.console, refresh_per_second=8, transient=False)
            self.live.start()

    def _render(self) -> Any:
        from rich.text import Text

        lines = []
        for sid, (status, cur, total) in self.rows.items():
            line = f"{sid}: {status}"
            if status in ("Downloading", "Pushing", "Extracting") and total:
                line += f" {_bar(cur, total)}  {_human(cur)}/{_human(total)}"
            lines.append(line)
        return Text("\n".join(lines))

    def __call__(self, ev: Any) -> None:
        if self.quiet:
            return
        with self.lock:
            if not ev.id:
                if self.live:
                    self.live.console.print(ev.status, markup=False)
                else:
                    click.echo(ev.status)
                return
            self.rows[ev.id] = (ev.status, ev.current, ev.total)
            if self.live:
                self.live.update(self._render())
            elif self.last_status.get(ev.id) != ev.status:
                self.last_status[ev.id] = ev.status
                click.echo(f"{ev.id}: {ev.status}")

    def close(self) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.stop()
            self.live = None


@click.command(help="Download an image from a registry.")
@click.argument("name")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Pick this platform from a multi-platform image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the progress output.")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("--disable-content-trust", is_flag=True, default=True, hidden=True)
@registry_options
@click.pass_obj
def pull(state, name, platform, quiet, all_tags, disable_content_trust, tls_verify, creds, authfile, cert_dir):
    from dockyard.image.reference import parse

    apply_registry_env(authfile, cert_dir)
    credentials = parse_creds(creds)
    svc = state.engine.registry
    names = [str(r) for r in svc.list_tags(name, tls_verify=tls_verify, creds=credentials)] if all_tags else [name]
    results = []
    for n in names:
        printer = ProgressPrinter(quiet)
        try:
            results.append(svc.pull(n, platform=platform, tls_verify=tls_verify, creds=credentials,
                                    progress=printer))
        finally:
            printer.close()
        if not quiet:
            click.echo(f"Digest: {results[-1].digest}")
    if not results:
        return
    ref = parse(results[-1].reference)
    if all_tags:
        # Docker's summary for -a names the repository, not a tag.
        shown, full = ref.familiar_name(), ref.name
    else:
        shown, full = ref.familiar(), results[-1].reference
    if not quiet:
        fresh = not all(r.up_to_date for r in results)
        click.echo(f"Status: {'Downloaded newer image for' if fresh else 'Image is up to date for'} {shown}")
    click.echo(full)


@click.command(help="Upload an image to a registry.")
@click.argument("name")
@click.argument("destination", required=False)
@click.option("-q", "--quiet", is_flag=True, help="Suppress the progress output.")
@click.option("--chunk-size", type=int, hidden=True,
              help="Upload blobs in chunks of this many bytes (default: one request per blob).")
@click.option("--disable-content-trust", is_flag=True, default=True, hidden=True)
@registry_options
@click.pass_obj
def push(state, name, destination, quiet, chunk_size, disable_content_trust, tls_verify, creds, authfile, cert_dir):
    apply_registry_env(authfile, cert_dir)
    printer = ProgressPrinter(quiet)
    try:
        res = state.engine.registry.push(name, destination, tls_verify=tls_verify, creds=parse_creds(creds),
                                         progress=printer, chunk_size=chunk_size)
    finally:
        printer.close()
    if quiet:
        click.echo(res.reference)
    else:
        click.echo(f"{res.tag}: digest: {res.digest} size: {res.size}")
