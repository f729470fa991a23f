"""Global CLI conventions: help everywhere, version, info, one-line errors, Docker exit codes."""

from __future__ import annotations

import json

from dockyard.cli import COMMANDS, cli
from dockyard.host import cgroup_info


def _walk(group, ctx_path=()):
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*ctx_path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, (*ctx_path, name))


def test_every_command_has_help(dy):
    assert set(COMMANDS) <= set(cli.list_commands(None))
    for path, _cmd in _walk(cli):
        p = dy(*path, "--help")
        assert p.returncode == 0, (path, p.stderr)
        assert "usage:" in p.stdout.lower()  # the runtime prints runc's lower-case usage


def test_version(dy):
    p = dy("--version")
    assert p.returncode == 0 and p.stdout.startswith("dockyard version ")
    p = dy("version", "--format", "json")
    assert json.loads(p.stdout)["Version"]


def test_unknown_command_and_flag_exit_125(dy):
    p = dy("frobnicate")
    assert p.returncode == 125
    assert p.stderr.startswith("Error: ") and "frobnicate" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = dy("info", "--no-such-flag")
    assert p.returncode == 125 and p.stderr.startswith("Error: ")


def test_info_reports_this_host(dy):
    p = dy("info", "--format", "json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    h = info["host"]
    # What the kernel says, read independently of dockyard's own parser.
    with open("/proc/self/status") as f:
        capeff = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    assert h["canRaiseRlimits"] == bool(capeff >> 24 & 1)
    mounts = open("/proc/self/mounts").read().split("\n")
    has_v1 = any(" cgroup " in m for m in mounts)
    has_v2 = any(" cgroup2 " in m for m in mounts)
    expected = "hybrid" if has_v1 and has_v2 else "v1" if has_v1 else "v2"
    assert h["cgroupVersion"] == expected == cgroup_info().version
    assert info["store"]["root"] == str(dy.root)
    assert "dockyard" in info["runtimes"]
    assert p.stdout == dy("system", "info", "--format", "json").stdout


def test_info_human_output(dy):
    p = dy("info")
    assert p.returncode == 0
    assert "cgroupVersion:" in p.stdout and "canRaiseRlimits:" in p.stdout
