"""`manifest inspect`: the raw index or manifest a registry serves for a name."""

from __future__ import annotations

import click

from dockyard.cli import LazyGroup
from dockyard.cli.output import print_json
from dockyard.cli.pull import apply_registry_env, parse_creds, registry_options


@click.group(cls=LazyGroup, help="Inspect image manifests and manifest lists.")
def manifest():
    pass


@manifest.command(help="Display an image manifest or manifest list from a registry.")
@click.argument("name")
@click.option("-v", "--verbose", is_flag=True, help="Output details: reference, descriptor, raw and parsed manifest.")
@click.option("--insecure", is_flag=True, help="Allow communication with an insecure registry (as --tls-verify=false).")
@registry_options
@click.pass_obj
def inspect(state, name, verbose, insecure, tls_verify, creds, authfile, cert_dir):
    apply_registry_env(authfile, cert_dir)
    if insecure:
        tls_verify = False
    print_json(state.engine.registry.inspect_manifest(name, verbose=verbose, tls_verify=tls_verify,
                                                      creds=parse_creds(creds)))
