"""`dockyard registry`: run an OCI distribution registry and look after its storage."""

from __future__ import annotations

import click

from dockyard.cli import LazyGroup


@click.group(cls=LazyGroup, help="Run a container image registry (OCI distribution) and manage its storage.")
def registry():
    pass


_CONFIG_HELP = ("Registry config file (YAML, the reference registry's format); REGISTRY_* environment "
                "variables override it.")


def _load(config_arg, config_opt, addr=None):
    from dockyard.errors import InvalidArgument
    from dockyard.registry.server.config import load_config

    if config_arg and config_opt and config_arg != config_opt:
        raise InvalidArgument("give the config file once: as an argument or with --config")
    return load_config(config_opt or config_arg, addr=addr)


@registry.command("serve", help="Serve the registry in the foreground until interrupted.")
@click.argument("config_arg", metavar="[CONFIG]", required=False)
@click.option("--config", "config_opt", metavar="FILE", help=_CONFIG_HELP)
@click.option("--addr", metavar="[HOST]:PORT", help="Listen address (default :5000, or http.addr).")
def serve(config_arg, config_opt, addr):
    from dockyard.registry.server.app import serve as run

    cfg = _load(config_arg, config_opt, addr)
    run(cfg, on_ready=lambda url: click.echo(f"dockyard registry listening on {url}, storing in {cfg.root}",
                                             err=True))


@registry.command("htpasswd", help="Print (-n) or write a bcrypt htpasswd entry, like Apache's htpasswd -B.",
                  context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-B", "bcrypt_", is_flag=True, help="Use bcrypt (the only algorithm; accepted for compatibility).")
@click.option("-b", "batch", is_flag=True, help="Take the password from the command line.")
@click.option("-n", "stdout", is_flag=True, help="Print the entry instead of updating a file.")
@click.option("-c", "create", is_flag=True, help="Create the file (replacing it).")
@click.option("-C", "cost", type=click.IntRange(4, 17), default=10, show_default=True, help="bcrypt cost.")
@click.argument("args", nargs=-1, required=True)
def htpasswd(bcrypt_, batch, stdout, create, cost, args):
    from dockyard.errors import InvalidArgument
    from dockyard.registry.server.auth import make_entry, update_file

    want = (1 if stdout else 2) + (1 if batch else 0)
    if len(args) != want:
        usage = "[-n] " if stdout else "FILE "
        raise InvalidArgument(f"expected {usage}USER{' PASSWORD' if batch else ''}, got {len(args)} arguments")
    path = None if stdout else args[0]
    user = args[0 if stdout else 1]
    password = args[-1] if batch else click.prompt("New password", hide_input=True,
                                                    confirmation_prompt="Re-type new password", err=True)
    entry = make_entry(user, password, cost)
    if path is None:
        click.echo(entry)
    else:
        existed = update_file(path, entry, create=create)
        click.echo(f"{'Updating' if existed else 'Adding'} password for user {user}", err=True)


@registry.command("gc", help="Delete blobs no manifest references (mark and sweep).")
@click.argument("config_arg", metavar="[CONFIG]", required=False)
@click.option("--config", "config_opt", metavar="FILE", help=_CONFIG_HELP)
@click.option("-d", "--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("-m", "--delete-untagged", is_flag=True,
              help="Also delete manifests no tag reaches (keeping index children and referrers of kept ones).")
def gc(config_arg, config_opt, dry_run, delete_untagged):
    from dockyard.registry.server.gc import collect

    cfg = _load(config_arg, config_opt)
    result = collect(cfg.root, dry_run=dry_run, delete_untagged=delete_untagged)
    verb = "eligible for deletion" if dry_run else "deleted"
    for digest in result.manifests_deleted:
        click.echo(f"manifest {verb}: {digest}")
    for digest in result.blobs_deleted:
        click.echo(f"blob {verb}: {digest}")
    click.echo(f"{result.marked} blobs marked, {len(result.blobs_deleted)} blobs ({result.bytes_freed} bytes) "
               f"and {len(result.manifests_deleted)} manifests {verb}")


registry.add_command(gc, "garbage-collect")
