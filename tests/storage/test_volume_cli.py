"""`volume create/ls/inspect/rm/prune` through the CLI against a private root."""

from __future__ import annotations

import json

import pytest


def test_create_ls_inspect_rm(dy):
    assert dy("volume", "create", "nginx-data", check=True).stdout == "nginx-data\n"
    # creating it again is not an error (Docker returns the existing volume)
    assert dy("volume", "create", "nginx-data", check=True).stdout == "nginx-data\n"
    anon = dy("volume", "create", check=True).stdout.strip()
    assert len(anon) == 64
    dy("volume", "create", "--label", "tier=web", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
       "webtmp", check=True)
    out = dy("volume", "ls", check=True).stdout.splitlines()
    assert out[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert sorted(line.split()[1] for line in out[1:]) == sorted([anon, "nginx-data", "webtmp"])
    assert dy("volume", "ls", "-q", "--filter", "label=tier=web", check=True).stdout == "webtmp\n"
    assert dy("volume", "ls", "-q", "--filter", "name=nginx", check=True).stdout == "nginx-data\n"
    assert dy("volume", "ls", "--format", "{{.Name}}:{{.Driver}}", "-f", "label=tier",
              check=True).stdout == "webtmp:local\n"
    rows = [json.loads(x) for x in dy("volume", "ls", "--format", "json", check=True).stdout.splitlines()]
    assert {r["Name"] for r in rows} == {anon, "nginx-data", "webtmp"}

    info = json.loads(dy("volume", "inspect", "nginx-data", "webtmp", check=True).stdout)
    assert [v["Name"] for v in info] == ["nginx-data", "webtmp"]
    assert info[0]["Mountpoint"] == str(dy.root / "volumes" / "nginx-data" / "_data")
    assert info[0]["Driver"] == "local" and info[0]["Scope"] == "local" and info[0]["Options"] is None
    assert info[1]["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert info[1]["Labels"] == {"tier": "web"}
    assert (dy.root / "volumes" / "nginx-data" / "_data").is_dir()
    assert dy("volume", "inspect", "-f", "{{.Mountpoint}}", "webtmp", check=True).stdout.strip().endswith(
        "/volumes/webtmp/_data")

    p = dy("volume", "rm", "nginx-data", "missing")
    assert p.returncode == 1 and p.stdout == "nginx-data\n"
    assert p.stderr.strip() == "Error: get missing: no such volume"
    assert not (dy.root / "volumes" / "nginx-data").exists()
    assert dy("volume", "rm", "-f", "missing").returncode == 0


@pytest.mark.parametrize("args,msg", [
    (["a/b"], 'create a/b: "a/b" includes invalid characters for a local volume name, only '
              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    (["-o", "foo=1", "v1"], 'invalid option: "foo"'),
    (["-o", "type=nfs", "v1"], 'missing required option: "device"'),
    (["-o", "o=addr=1.2.3.4", "v1"], 'missing required option: "device"'),
    (["-d", "nfs", "v1"], 'plugin "nfs" not found'),
])
def test_create_bad_input_leaves_nothing(dy, args, msg):
    p = dy("volume", "create", *args)
    assert p.returncode == 125
    assert p.stderr.count("\n") == 1 and msg in p.stderr
    assert dy("volume", "ls", "-q", check=True).stdout == ""
    assert not any((dy.root / "volumes").glob("*")) if (dy.root / "volumes").exists() else True


def test_ls_filter_errors(dy):
    p = dy("volume", "ls", "--filter", "colour=red")
    assert p.returncode == 125 and "invalid filter 'colour'" in p.stderr
    p = dy("volume", "ls", "--filter", "dangling=maybe")
    assert p.returncode == 125 and "invalid filter 'dangling=maybe'" in p.stderr


def test_prune(dy):
    for n in ("keep-me", "drop-me"):
        dy("volume", "create", "--label", f"name={n}", n, check=True)
    (dy.root / "volumes" / "drop-me" / "_data" / "f").write_bytes(b"x" * 1500)
    p = dy("volume", "prune", "-f", "--filter", "label!=name=keep-me", check=True)
    assert p.stdout == "Deleted Volumes:\ndrop-me\n\nTotal reclaimed space: 1.5kB\n"
    assert dy("volume", "ls", "-q", check=True).stdout == "keep-me\n"
    # without -f it asks, and "no" keeps everything
    p = dy("volume", "prune", input="n\n")
    assert "Are you sure you want to continue?" in p.stdout
    assert dy("volume", "ls", "-q", check=True).stdout == "keep-me\n"
