"""`build` / `image build`: Podman's flags, Podman's progress lines (STEP n/m, COMMIT, -->)."""

from __future__ import annotations

import os
import sys

import click


def _parse_secret(spec: str) -> tuple[str, tuple[str, str]]:
    kv = {}
    for item in spec.split(","):
        k, eq, v = item.partition("=")
        if not eq:
            raise click.UsageError(f"invalid --secret {spec!r}: want id=ID,src=FILE or id=ID,env=VAR")
        kv[k.strip().lower()] = v.strip()
    sid = kv.get("id")
    if not sid:
        raise click.UsageError(f"invalid --secret {spec!r}: id= is required")
    typ = kv.get("type")
    src = kv.get("src") or kv.get("source")
    if kv.get("env") or (typ == "env" and not src):
        return sid, ("env", kv.get("env") or src or sid)
    if typ == "env":
        return sid, ("env", src or sid)
    if src:
        return sid, ("file", src)
    # Like buildx: a bare id=X reads the environment variable X, else the file X.
    return sid, ("env", sid) if sid in os.environ else ("file", sid)


def _memory(value: str | None) -> int:
    if not value:
        return 0
    from dockyard.runtime.cgroups import parse_memory

    return parse_memory(value)


def _pairs(values: tuple[str, ...], what: str, env_fallback: bool = False) -> dict[str, str]:
    out = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k:
            raise click.UsageError(f"invalid {what} {v!r}: want KEY=VALUE")
        if not eq:
            if not env_fallback:
                raise click.UsageError(f"invalid {what} {v!r}: want KEY=VALUE")
            if k not in os.environ:
                continue  # Docker drops --build-arg NAME when NAME is not set in the environment
            val = os.environ[k]
        out[k] = val
    return out


@click.command("build", help="Build an image from a Containerfile or Dockerfile.")
@click.argument("context", required=False, default=".")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name (and tag) of the image.")
@click.option("-f", "--file", "dockerfile", metavar="PATH", help="Containerfile/Dockerfile ('-' reads stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY[=VALUE]", help="Set a build-time ARG.")
@click.option("--target", metavar="STAGE", help="Build this stage and stop.")
@click.option("--build-context", "build_contexts", multiple=True, metavar="NAME=DIR",
              help="An extra local context COPY --from=NAME reads.")
@click.option("--no-cache", is_flag=True, help="Do not use cached steps.")
@click.option("--layers", type=click.BOOL, default=True, show_default=True, metavar="BOOL",
              help="Cache intermediate steps.")
@click.option("--pull", is_flag=False, flag_value="always", default="missing", metavar="POLICY",
              help="Pull the base images: always, missing (default), never, newer.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Add a label to the image.")
@click.option("--annotation", "annotations", multiple=True, metavar="[TYPE:]KEY=VALUE",
              help="Add an annotation to the image manifest.")
@click.option("--platform", metavar="OS/ARCH", help="Target platform (the host's only).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--format", "fmt", default="oci", show_default=True, type=click.Choice(["oci", "docker"]),
              help="Image manifest and config format.")
@click.option("--secret", "secret_specs", multiple=True, metavar="id=ID,src=FILE|env=VAR",
              help="A secret RUN --mount=type=secret can read.")
@click.option("--network", default="default", show_default=True, metavar="MODE",
              help="RUN steps' network: default (own namespace on the default bridge; slirp4netns rootless), "
                   "host, none, or a network.")
@click.option("--cap-add", multiple=True, metavar="CAP", help="Add a capability to RUN steps.")
@click.option("--cap-drop", multiple=True, metavar="CAP", help="Drop a capability from RUN steps.")
@click.option("--security-opt", multiple=True, metavar="OPT", help="Security options for RUN steps.")
@click.option("--dns", multiple=True, metavar="IP", help="DNS server for RUN steps.")
@click.option("--add-host", multiple=True, metavar="HOST:IP", help="Add a line to RUN steps' /etc/hosts.")
@click.option("-m", "--memory", metavar="SIZE", help="Memory limit for RUN steps (e.g. 512m).")
@click.option("-v", "--volume", "volumes", multiple=True, metavar="/HOST:/CONTAINER[:ro]",
              help="Bind mount for RUN steps (never part of the image).")
@click.option("--env", "envs", multiple=True, metavar="KEY=VALUE", help="Add an environment variable to the image.")
@click.option("--iidfile", metavar="FILE", help="Write the image ID to FILE.")
@click.option("-o", "--output", metavar="type=local,dest=DIR", help="Also export the image's filesystem.")
@click.option("--tls-verify", type=click.BOOL, is_flag=False, flag_value=True, default=None, metavar="BOOL",
              help="Require HTTPS and verify certificates when pulling base images (default true).")
@click.option("--runtime", metavar="NAME", help="OCI runtime for RUN steps (default $DOCKYARD_RUNTIME or dockyard).")
@click.option("--rm/--no-rm", "rm_", default=True, help="Accepted: build containers are always removed.")
@click.option("--force-rm", is_flag=True, help="Accepted: build containers are always removed.")
@click.option("--squash", is_flag=True, help="Squash this build's new layers into one.")
@click.option("--squash-all", is_flag=True, help="Squash all layers, the base image's too, into one.")
@click.pass_obj
def build(state, context, **o):
    from dockyard.engine.build import BuildOptions, BuildService

    if o["squash"] and o["squash_all"]:
        raise click.UsageError("--squash and --squash-all cannot be used together")
    dockerfile, text, context_tar = o["dockerfile"], None, None
    if context == "-":
        # Docker: stdin is either a tar of the whole context or a Dockerfile (empty context).
        context_tar = sys.stdin.buffer.read()
    elif dockerfile == "-":
        text, dockerfile = sys.stdin.read(), None

    def report(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    def warn(line: str) -> None:
        click.echo(f"WARNING: {line}", err=True)

    pull = o["pull"].lower()
    opts = BuildOptions(
        context=context, context_tar=context_tar, dockerfile=dockerfile, dockerfile_text=text, tags=list(o["tags"]),
        build_args=_pairs(o["build_args"], "--build-arg", env_fallback=True), target=o["target"],
        build_contexts=_pairs(o["build_contexts"], "--build-context"), no_cache=o["no_cache"], layers=o["layers"],
        pull={"true": "always", "false": "missing"}.get(pull, pull),
        labels=_pairs(o["labels"], "--label"), annotations=_pairs(o["annotations"], "--annotation"),
        platform=o["platform"], fmt=o["fmt"], secrets=dict(_parse_secret(x) for x in o["secret_specs"]),
        network=o["network"], runtime=o["runtime"] or os.environ.get("DOCKYARD_RUNTIME") or "dockyard",
        output=o["output"], cap_add=list(o["cap_add"]), cap_drop=list(o["cap_drop"]),
        security_opt=list(o["security_opt"]), dns=list(o["dns"]), add_hosts=list(o["add_host"]),
        memory=_memory(o["memory"]), volumes=list(o["volumes"]), env=_pairs(o["envs"], "--env", True),
        tls_verify=o["tls_verify"], squash="all" if o["squash_all"] else "new" if o["squash"] else "none",
        quiet=o["quiet"], report=report, warn=warn)
    sys.stdout.flush()
    import signal

    def stop(signum: int, _frame: object) -> None:
        # Unwind like Ctrl-C so the step's container, mounts, network and temp files are removed.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, stop)
    image_id = BuildService(state.engine).build(opts)
    if o["iidfile"]:
        with open(o["iidfile"], "w") as f:
            f.write(image_id)
    click.echo(image_id.split(":", 1)[1])


@click.group("builder", help="Manage the build cache.")
def builder():
    pass


@builder.command("prune", help="Remove the build cache (cached steps and their unpacked layers).")
@click.option("-a", "--all", "all_cache", is_flag=True, help="Also remove RUN --mount=type=cache directories.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt (dockyard never prompts).")
@click.pass_obj
def builder_prune(state, all_cache, force):
    from dockyard.engine.build import BuildService
    from dockyard.formatting.containers import human_size

    freed = BuildService(state.engine).prune(all_cache)
    click.echo(f"Total reclaimed space: {human_size(freed, 4)}")
