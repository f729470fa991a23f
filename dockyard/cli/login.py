"""`login` and `logout`: credentials checked against the registry, kept in auth.json."""

from __future__ import annotations

import sys

import click

from dockyard.cli.pull import apply_registry_env, tls_verify_option


@click.command(help="Log in to a registry (default docker.io).")
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--authfile", metavar="PATH", help="Path of the auth file (default auth.json).")
@click.option("--cert-dir", metavar="DIR", help="Directory with certificates (*.crt) for TLS.")
@tls_verify_option
@click.pass_obj
def login(state, server, username, password, password_stdin, authfile, cert_dir, tls_verify):
    apply_registry_env(authfile, cert_dir)
    server = server or "docker.io"
    if password and password_stdin:
        raise click.UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise click.UsageError("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    elif not username:
        user = state.engine.registry.existing_login(server, tls_verify=tls_verify)
        if user:
            click.echo(f"Authenticating with existing credentials for {server}")
            click.echo("Login Succeeded")
            return
    if not username:
        username = click.prompt("Username", err=True)
    if not password:
        password = click.prompt("Password", hide_input=True, err=True)
    state.engine.registry.login(server, username, password, tls_verify=tls_verify)
    click.echo("Login Succeeded")


@click.command(help="Log out of a registry (default docker.io).")
@click.argument("server", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove the credentials of every registry.")
@click.option("--authfile", metavar="PATH", help="Path of the auth file (default auth.json).")
@click.pass_obj
def logout(state, server, all_, authfile):
    apply_registry_env(authfile, None)
    if all_:
        state.engine.registry.logout(all_registries=True)
        click.echo("Removed login credentials for all registries")
        return
    key = state.engine.registry.logout(server or "docker.io")
    click.echo(f"Removing login credentials for {key}")
