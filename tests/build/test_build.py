"""`dockyard build` end to end: the tutorial's Dockerfile on busybox, multi-stage, cache, secrets,
.dockerignore, build args, whiteouts and broken Dockerfiles.  Every image built is run or inspected."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
import time

import pytest

from tests.build.conftest import RUNTIME, write

pytestmark = [pytest.mark.peer(RUNTIME) if RUNTIME != "dockyard" else pytest.mark.peer(),
              pytest.mark.skipif(os.geteuid() != 0, reason="builds mount overlayfs")]


def config(dyb, ref: str) -> dict:
    p = dyb("image", "inspect", ref, check=True)
    return json.loads(p.stdout)[0]


def image_ids(dyb) -> set[str]:
    return set(dyb("images", "-aq", "--no-trunc").stdout.split())


TUTORIAL = """\
# The tutorial's example, on the offline busybox image instead of alpine.
FROM localhost/busybox
# Copy static content into the container
COPY site/index.html /var/www/index.html
RUN echo "app:x:1000:1000:app:/home/app:/bin/sh" >> /etc/passwd \\
    && echo "app:x:1000:" >> /etc/group \\
    && mkdir -p /home/app && chown app:app /home/app
USER app:app
RUN echo built-by-$(id -un) > /home/app/who
EXPOSE 80
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD wget -q -O- http://localhost:80/ || exit 1
ENTRYPOINT ["ls", "-a"]
CMD ["-l", "/var/www", "/home/app"]
"""


def test_tutorial_dockerfile_builds_and_runs(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": TUTORIAL, "site/index.html": "<h1>hello</h1>\n"})
    p = dyb("build", "-t", "mycontainer", str(ctx))
    assert p.returncode == 0, p.stderr
    assert "STEP 1/9: FROM localhost/busybox" in p.stdout
    assert "STEP 9/9: CMD" in p.stdout and "COMMIT mycontainer" in p.stdout
    assert "Successfully tagged localhost/mycontainer:latest" in p.stdout
    image_id = p.stdout.split()[-1]
    assert len(image_id) == 64
    cfg = config(dyb, "mycontainer")
    c = cfg["Config"]
    assert c["User"] == "app:app"
    assert c["ExposedPorts"] == {"80/tcp": {}}
    assert c["Entrypoint"] == ["ls", "-a"] and c["Cmd"] == ["-l", "/var/www", "/home/app"]
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- http://localhost:80/ || exit 1"],
                                "Interval": 5_000_000_000, "Timeout": 3_000_000_000, "Retries": 2}
    assert cfg["Id"].endswith(image_id)
    # busybox's one layer + COPY + two RUNs
    assert len(cfg["RootFS"]["Layers"]) == 4
    r = dyb("run", "--rm", "mycontainer", check=True)
    assert "index.html" in r.stdout and "who" in r.stdout
    r = dyb("run", "--rm", "--entrypoint", "cat", "mycontainer", "/home/app/who", "/var/www/index.html", check=True)
    assert r.stdout == "built-by-app\n<h1>hello</h1>\n"
    r = dyb("run", "--rm", "--entrypoint", "id", "mycontainer", check=True)
    assert r.stdout.startswith("uid=1000(app) gid=1000(app)")


def test_history_and_empty_layers(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Containerfile": "FROM localhost/busybox\nENV A=1 B=\"two words\"\n"
                                                    "RUN echo hi > /hi\nLABEL x=y\n"})
    dyb("build", "-t", "h", str(ctx), check=True)
    cfg = config(dyb, "h")
    assert "A=1" in cfg["Config"]["Env"] and "B=two words" in cfg["Config"]["Env"]
    assert cfg["Config"]["Labels"] == {"x": "y"}
    p = dyb("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "h", check=True)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("/bin/sh -c #(nop) LABEL x=y|0")
    assert lines[1].startswith("/bin/sh -c echo hi > /hi|")
    assert lines[2].startswith('/bin/sh -c #(nop) ENV A=1 B=two words|0')


def test_cache_hit_miss_and_no_cache(dyb, tmp_path):
    df = ("FROM localhost/busybox\nCOPY a.txt /a.txt\nRUN sleep 1 && cat /a.txt > /b.txt\n"
          "COPY c.txt /c.txt\nRUN cat /b.txt /c.txt\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "a.txt": "A\n", "c.txt": "C\n"})
    t0 = time.monotonic()
    first = dyb("build", "-t", "cached", str(ctx), check=True)
    t1 = time.monotonic()
    assert "Using cache" not in first.stdout
    second = dyb("build", "-t", "cached", str(ctx), check=True)
    t2 = time.monotonic()
    assert second.stdout.count("--> Using cache") == 4
    assert second.stdout.split()[-1] == first.stdout.split()[-1], "a fully cached build gives the same image"
    assert "A\nC\n" not in second.stdout, "cached RUN steps do not run"
    assert t2 - t1 < t1 - t0, "the cached build is faster"
    # Changing the second copied file reruns from that step on, and only from there.
    (ctx / "c.txt").write_text("C2\n")
    third = dyb("build", "-t", "cached", str(ctx), check=True)
    assert third.stdout.count("--> Using cache") == 2
    assert "A\nC2\n" in third.stdout
    # Touching a file without changing it keeps the cache (content, not times, is the key).
    os.utime(ctx / "a.txt", (1, 1))
    assert dyb("build", str(ctx), check=True).stdout.count("--> Using cache") == 4
    assert "Using cache" not in dyb("build", "--layers=false", str(ctx), check=True).stdout
    fourth = dyb("build", "--no-cache", "-t", "cached", str(ctx), check=True)
    assert "Using cache" not in fourth.stdout and "A\nC2\n" in fourth.stdout
    assert dyb("run", "--rm", "cached", "cat", "/b.txt", "/c.txt", check=True).stdout == "A\nC2\n"
    # builder prune empties the cache: the next build runs every step again.
    pr = dyb("builder", "prune", "-f", check=True)
    assert pr.stdout.startswith("Total reclaimed space: ") and not pr.stdout.strip().endswith(" 0B")
    assert "Using cache" not in dyb("build", str(ctx), check=True).stdout


def test_multi_stage_target_and_scratch(dyb, tmp_path):
    df = """\
FROM localhost/busybox AS builder
LABEL stage=builder
RUN mkdir /out && echo built > /out/artifact && cp /bin/busybox /out/
FROM localhost/busybox AS unused
RUN echo this stage must not run && exit 3
FROM builder AS tested
RUN test -f /out/artifact
FROM scratch
COPY --from=builder /out/busybox /bin/busybox
COPY --from=0 /out/artifact /artifact
COPY --from=tested /out/artifact /artifact2
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/artifact"]
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    p = dyb("build", "-t", "final", str(ctx))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "must not run" not in p.stdout
    assert "[1/3] STEP 1/3: FROM localhost/busybox AS builder" in p.stdout
    assert "[2/3] STEP 1/2: FROM builder AS tested" in p.stdout
    assert "[3/3] STEP 1/6: FROM scratch" in p.stdout
    assert dyb("run", "--rm", "final", check=True).stdout == "built\n"
    cfg = config(dyb, "final")
    assert len(cfg["RootFS"]["Layers"]) == 3, "the final image holds only its own stage's layers"
    # The stages are kept as untagged images (labelled like their stage) the tutorial's prune filter removes.
    before = image_ids(dyb)
    pr = dyb("image", "prune", "-f", "--filter", "label=stage=builder", check=True)
    assert pr.stdout.count("deleted: sha256:") == 2
    assert len(image_ids(dyb)) == len(before) - 2
    # --target builds up to that stage only.
    p = dyb("build", "--target", "builder", "-t", "onlybuilder", str(ctx), check=True)
    assert "[2/" not in p.stdout and "STEP 1/3: FROM localhost/busybox AS builder" in p.stdout
    assert dyb("run", "--rm", "onlybuilder", "cat", "/out/artifact", check=True).stdout == "built\n"
    bad = dyb("build", "--target", "nope", str(ctx))
    assert bad.returncode == 125 and "target stage 'nope' could not be found" in bad.stderr


def test_secrets_are_visible_only_during_their_run(dyb, tmp_path):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("FILE-SECRET-VALUE-7f3a\n")
    df = """\
FROM localhost/busybox
RUN --mount=type=secret,id=SECRET1 \\
    --mount=type=secret,id=SECRET2,env=SECRET2 \\
    export SECRET1=$(cat /run/secrets/SECRET1) \\
    && echo "Secret test: ${#SECRET1} & ${#SECRET2}" \\
    && echo "lengths ${#SECRET1} ${#SECRET2}" > /lengths
RUN ls /run/secrets 2>&1 | wc -l > /after
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    env = {"SECRET2": "ENV-SECRET-VALUE-91bc"}
    p = dyb("build", "--secret", f"id=SECRET1,src={secret_file}", "--secret", "id=SECRET2,env=SECRET2",
            "-t", "withsecret", str(ctx), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Secret test: 22 & 21" in p.stdout
    r = dyb("run", "--rm", "withsecret", "sh", "-c", "cat /lengths; ls -a /run/secrets 2>&1; true", check=True)
    assert r.stdout.startswith("lengths 22 21\n")
    assert "SECRET1" not in r.stdout
    # Neither value is anywhere in the saved image: layers, config, history.
    out = tmp_path / "img.tar"
    dyb("save", "-o", str(out), "withsecret", check=True)
    blobs = []
    with tarfile.open(out) as tf:
        for m in tf.getmembers():
            if m.isfile():
                data = tf.extractfile(m).read()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                blobs.append(data)
    everything = b"".join(blobs)
    assert b"FILE-SECRET-VALUE" not in everything and b"ENV-SECRET-VALUE" not in everything
    assert b"run/secrets" not in everything or b"SECRET1" in everything  # only the Dockerfile text names it
    # A required secret that was not given fails the build with one line.
    write(ctx, {"Dockerfile": "FROM localhost/busybox\nRUN --mount=type=secret,id=X,required=true cat /run/secrets/X\n"})
    p = dyb("build", str(ctx))
    assert p.returncode == 125 and "secret 'X' is required" in p.stderr


def test_dockerignore_and_copy_semantics(dyb, tmp_path):
    files = {
        "Dockerfile": "FROM localhost/busybox\nCOPY . /ctx/\nCOPY --chmod=0750 --chown=1:2 tools/run.sh /usr/local/bin/\n"
                      "COPY *.md docs/\nWORKDIR /w\nCOPY tools rel/\nCOPY tools /etc/\n",
        ".dockerignore": "# comment\nsecret.env\n**/*.log\n!keep.log\nbuild/\n",
        "secret.env": "TOKEN=1\n", "a.log": "x", "keep.log": "k", "sub/deep/b.log": "x", "build/out.bin": "x",
        "README.md": "r", "NOTES.md": "n", "tools/run.sh": "#!/bin/sh\necho run\n",
    }
    ctx = write(tmp_path / "ctx", files)
    os.chmod(ctx / "tools", 0o700)
    dyb("build", "-t", "ign", str(ctx), check=True)
    r = dyb("run", "--rm", "ign", "sh", "-c",
            "cd /ctx && find . -type f | sort; stat -c '%a %u %g' /usr/local/bin/run.sh; ls /docs; ls /w/rel",
            check=True)
    # A directory source's contents are copied: the destination directory keeps (or gets) 0755.
    modes = dyb("run", "--rm", "ign", "stat", "-c", "%a %n", "/etc", "/w/rel", "/etc/run.sh", check=True).stdout
    assert modes.splitlines()[:2] == ["755 /etc", "755 /w/rel"] and "/etc/run.sh" in modes
    lines = r.stdout.splitlines()
    assert lines[:6] == ["./.dockerignore", "./Dockerfile", "./NOTES.md", "./README.md", "./keep.log",
                         "./tools/run.sh"]
    assert "750 1 2" in lines
    assert "NOTES.md" in lines and "README.md" in lines and "run.sh" in lines
    # A source .dockerignore excludes is an error, not a silent skip.
    write(ctx, {"Dockerfile": "FROM localhost/busybox\nCOPY secret.env /\n"})
    p = dyb("build", str(ctx))
    assert p.returncode == 125 and "secret.env" in p.stderr


def test_build_args_and_substitution(dyb, tmp_path):
    df = """\
ARG BASE=localhost/busybox
ARG VERSION=1.0
FROM ${BASE}
ARG VERSION
ARG FLAVOR=plain
ARG UNSET
ENV APP_VERSION=$VERSION APP_HOME=/opt/app
WORKDIR ${APP_HOME}/${FLAVOR:-none}
RUN echo "v=$VERSION f=$FLAVOR u=${UNSET:-dflt} alt=${FLAVOR:+set}" > info
LABEL version="${VERSION}" flavor=$FLAVOR
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    p = dyb("build", "--build-arg", "FLAVOR=extra", "--build-arg", "NOTUSED=1", "-t", "args", str(ctx), check=True)
    assert "WARNING: one or more build-args ['NOTUSED'] were not consumed" in p.stderr
    c = config(dyb, "args")["Config"]
    assert c["WorkingDir"] == "/opt/app/extra"
    assert c["Labels"] == {"version": "1.0", "flavor": "extra"}
    assert "APP_VERSION=1.0" in c["Env"]
    assert not any(e.startswith(("FLAVOR=", "VERSION=")) for e in c["Env"]), "ARGs are not persisted"
    r = dyb("run", "--rm", "args", "cat", "info", check=True)
    assert r.stdout == "v=1.0 f=extra u=dflt alt=set\n"
    # Changing a build arg a RUN sees is a cache miss for that RUN.
    p = dyb("build", "--build-arg", "FLAVOR=other", "--build-arg", "VERSION=2", "-t", "args2", str(ctx), check=True)
    assert "Using cache" not in p.stdout.split("RUN")[1]
    assert dyb("run", "--rm", "args2", "cat", "info", check=True).stdout == "v=2 f=other u=dflt alt=set\n"


def test_whiteouts_and_opaque_directories(dyb, tmp_path):
    df = """\
FROM localhost/busybox
RUN mkdir -p /data/sub && echo 1 > /data/one && echo 2 > /data/sub/two
RUN rm /bin/vi /data/one && rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/fresh
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    dyb("build", "-t", "wh", str(ctx), check=True)
    r = dyb("run", "--rm", "wh", "sh", "-c", "ls /bin/vi 2>&1; find /data | sort", check=True)
    assert "No such file" in r.stdout
    assert r.stdout.splitlines()[1:] == ["/data", "/data/sub", "/data/sub/fresh"]
    out = tmp_path / "img.tar"
    dyb("save", "--format", "oci-archive", "-o", str(out), "wh", check=True)
    names = []
    with tarfile.open(out) as tf:
        index = json.load(tf.extractfile("index.json"))
        man = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        last = man["layers"][-1]["digest"].split(":")[1]
        with tarfile.open(fileobj=tf.extractfile(f"blobs/sha256/{last}")) as layer:
            names = layer.getnames()
    assert "bin/.wh.vi" in names and "data/.wh.one" in names
    assert "data/sub/.wh..wh..opq" in names and "data/sub/fresh" in names
    assert not any(n.startswith(("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf")) for n in names)


@pytest.mark.peer("umoci")
def test_whiteouts_read_by_umoci(dyb, tmp_path):
    """A real peer applies our layers: umoci unpacks the saved OCI layout with the deletions applied."""
    import subprocess

    df = ("FROM localhost/busybox\nRUN mkdir -p /data/sub && echo 1 > /data/one && echo 2 > /data/sub/two\n"
          "RUN rm /bin/vi /data/one && rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/fresh\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    dyb("build", "-t", "wh", str(ctx), check=True)
    layout = tmp_path / "layout"
    dyb("save", "--format", "oci-dir", "-o", str(layout), "wh", check=True)
    bundle = tmp_path / "bundle"
    p = subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rootfs = bundle / "rootfs"
    assert not (rootfs / "bin" / "vi").exists() and (rootfs / "bin" / "busybox").is_file()
    assert sorted(str(p.relative_to(rootfs)) for p in (rootfs / "data").rglob("*")) == ["data/sub", "data/sub/fresh"]


@pytest.mark.parametrize("dockerfile,code,message", [
    ("FROM localhost/busybox\nRUN true\nFROBNICATE x\n", 125, "line 3: unknown instruction: FROBNICATE"),
    ("FROM localhost/busybox\nCOPY missing.txt /\n", 125, "missing.txt: no such file or directory"),
    ("FROM localhost/busybox\nRUN echo partial > /p && exit 7\n", 7, 'building at STEP "RUN echo partial'),
    ("FROM localhost/busybox\nEXPOSE eighty\n", 125, "line 2: EXPOSE has an invalid port 'eighty'"),
    ("FROM localhost/busybox\nSHELL /bin/bash -c\n", 125, "line 2: SHELL requires the arguments to be in JSON"),
    ("FROM localhost/nosuchimage\n", 125, "nosuchimage"),
])
def test_broken_dockerfiles_store_nothing(dyb, tmp_path, dockerfile, code, message):
    ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile})
    before = image_ids(dyb)
    p = dyb("build", "--pull=never", "-t", "broken", str(ctx))
    assert p.returncode == code, p.stdout + p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], p.stderr
    assert image_ids(dyb) == before
    assert dyb("image", "exists", "broken").returncode == 1


def test_containerfile_from_stdin_and_iidfile(dyb, tmp_path):
    iid = tmp_path / "iid"
    p = dyb("build", "-q", "--iidfile", str(iid), "-f", "-", str(tmp_path),
            input="FROM localhost/busybox\nRUN echo quiet-run\nCMD [\"echo\", \"from-stdin\"]\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == iid.read_text().split(":", 1)[1]
    assert "quiet-run" not in p.stdout and "STEP" not in p.stdout
    assert dyb("run", "--rm", p.stdout.strip(), check=True).stdout == "from-stdin\n"


def test_labels_annotations_and_docker_format(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nRUN touch /x\n"})
    dyb("build", "--label", "org.opencontainers.image.title=demo",
        "--annotation", "manifest-descriptor:org.opencontainers.image.url=https://example.com/src",
        "--annotation", "org.opencontainers.image.vendor=dockyard", "-t", "ann", str(ctx), check=True)
    assert config(dyb, "ann")["Config"]["Labels"] == {"org.opencontainers.image.title": "demo"}
    out = tmp_path / "oci"
    dyb("save", "--format", "oci-dir", "-o", str(out), "ann", check=True)
    index = json.loads((out / "index.json").read_text())
    man = json.loads((out / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    assert man["annotations"] == {"org.opencontainers.image.url": "https://example.com/src",
                                  "org.opencontainers.image.vendor": "dockyard"}
    dyb("build", "--format", "docker", "-t", "dock", str(ctx), check=True)
    out = tmp_path / "docker-dir"
    dyb("save", "--format", "oci-dir", "-o", str(out), "dock", check=True)
    p = dyb("image", "inspect", "--format", "{{.Id}}", "dock", check=True)
    assert p.stdout.strip()
    bad = dyb("build", "--platform", "linux/s390x" if os.uname().machine != "s390x" else "linux/arm64", str(ctx))
    assert bad.returncode == 125 and "only the host platform" in bad.stderr


def test_interrupted_build_cleans_up(dyb, tmp_path):
    import signal
    import subprocess

    from tests.helpers import REPO, dockyard_cmd

    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nRUN echo started && sleep 60\n"})
    env = dict(os.environ, PYTHONPATH=str(REPO), DOCKYARD_RUNTIME=RUNTIME)
    proc = subprocess.Popen([*dockyard_cmd(dyb.root), "--runroot", str(dyb.root / "run"), "build", "-t", "intr",
                             str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.strip() == "started":
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and err.count("Error:") == 1
    assert dyb("image", "exists", "intr").returncode == 1
    # (the dyb fixture checks that no mount, temp dir, runtime state or secret is left)


@pytest.mark.parametrize("flags,message", [
    (["-t", "UPPER"], "must be lowercase"),
    (["--secret", "id=x,src=/nonexistent/file"], "secret x: /nonexistent/file: no such file"),
    (["-o", "type=registry,dest=x"], "invalid --output"),
    (["--squash", "--squash-all"], "--squash and --squash-all cannot be used together"),
    (["--pull=sometimes"], "invalid --pull value"),
])
def test_bad_flags_fail_before_any_step(dyb, tmp_path, flags, message):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nRUN echo step-ran\n"})
    p = dyb("build", *flags, str(ctx))
    assert p.returncode == 125 and message in p.stderr
    assert "step-ran" not in p.stdout and "STEP" not in p.stdout


@pytest.mark.parametrize("flag,layers", [("--squash", 2), ("--squash-all", 1)])
def test_squash(dyb, tmp_path, flag, layers):
    df = ("FROM localhost/busybox\nRUN mkdir -p /data/sub && echo 1 > /data/one && echo 2 > /data/sub/two\n"
          "RUN rm /bin/vi /data/one && rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/fresh\n"
          "ENV DONE=1\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    dyb("build", flag, "-t", "sq", str(ctx), check=True)
    cfg = config(dyb, "sq")
    assert len(cfg["RootFS"]["Layers"]) == layers
    assert "DONE=1" in cfg["Config"]["Env"]
    r = dyb("run", "--rm", "sq", "sh", "-c", "ls /bin/vi 2>&1; find /data | sort; cat /data/sub/fresh", check=True)
    assert "No such file" in r.stdout
    assert r.stdout.splitlines()[1:] == ["/data", "/data/sub", "/data/sub/fresh", "new"]
    sizes = dyb("history", "--format", "{{.Size}}", "sq", check=True).stdout.split()
    assert len([s for s in sizes if s != "0B"]) == layers, "one non-empty history entry per layer"


def test_non_root_scratch_pattern(dyb, tmp_path):
    """The tutorial's Dockerfile.non-root-scratch pattern: a user made in a builder, a static binary and
    the passwd/group files copied into scratch, USER by name."""
    df = """\
FROM localhost/busybox AS builder
RUN echo "appuser:x:10001:10001:app:/nonexistent:/sbin/nologin" >> /etc/passwd \\
    && echo "appuser:x:10001:" >> /etc/group \\
    && mkdir /data && chown 10001:10001 /data
FROM scratch
COPY --from=builder /etc/passwd /etc/group /etc/
COPY --from=builder /bin/busybox /busybox
COPY --from=builder --chown=appuser:appuser /data /data
USER appuser
ENTRYPOINT ["/busybox"]
CMD ["sh", "-c", "/busybox id; /busybox stat -c '%u:%g' /data; /busybox touch /data/ok && echo writable"]
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    dyb("build", "-t", "nonroot", str(ctx), check=True)
    r = dyb("run", "--rm", "nonroot", check=True)
    assert r.stdout == "uid=10001(appuser) gid=10001(appuser)\n10001:10001\nwritable\n"


def test_parallel_builds_share_the_cache(dyb, tmp_path):
    import subprocess

    from tests.helpers import REPO, dockyard_cmd

    df = "FROM localhost/busybox\nRUN echo base > /base\nCOPY a.txt /a.txt\nRUN cat /base /a.txt > /both\n"
    ctxs = [write(tmp_path / f"ctx{i}", {"Dockerfile": df, "a.txt": f"variant {i}\n"}) for i in range(3)]
    env = dict(os.environ, PYTHONPATH=str(REPO), DOCKYARD_RUNTIME=RUNTIME)
    procs = [subprocess.Popen([*dockyard_cmd(dyb.root), "--runroot", str(dyb.root / "run"), "build", "-t",
                               f"par{i}", str(c)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i, c in enumerate(ctxs)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, out + err
    for i in range(3):
        assert dyb("run", "--rm", f"par{i}", "cat", "/both", check=True).stdout == f"base\nvariant {i}\n"


def test_context_from_stdin(dyb, tmp_path):
    """`build -`: stdin is a tar of the context, or a Dockerfile with an empty context (Docker's rule)."""
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b'FROM localhost/busybox\nCOPY f /f\nCMD ["cat", "/f"]\n'),
                           ("f", b"from-tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    import subprocess

    from tests.helpers import REPO, dockyard_cmd

    env = dict(os.environ, PYTHONPATH=str(REPO), DOCKYARD_RUNTIME=RUNTIME)
    p = subprocess.run([*dockyard_cmd(dyb.root), "--runroot", str(dyb.root / "run"), "build", "-q", "-t", "tarctx",
                        "-"], input=buf.getvalue(), capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert dyb("run", "--rm", "tarctx", check=True).stdout == "from-tar\n"
    p2 = dyb("build", "-q", "-t", "dfctx", "-", input="FROM localhost/busybox\nCMD [\"echo\", \"df-only\"]\n")
    assert p2.returncode == 0, p2.stderr
    assert dyb("run", "--rm", "dfctx", check=True).stdout == "df-only\n"
