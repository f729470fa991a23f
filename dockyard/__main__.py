import sys


def main() -> None:
    """`python -m dockyard`, and the fastest target for a `dockyard` console script: the runtime and
    a plain `ps` are answered before click is imported."""
    if len(sys.argv) > 1 and sys.argv[1] == "runtime":
        # The OCI runtime is on every container start's hot path: dispatch it before click is imported.
        from dockyard.runtime.cli import main as runtime_main

        runtime_main(sys.argv[2:])
    from dockyard.fastcli import try_ps

    try_ps(sys.argv[1:])  # exits when it answered a plain `ps`, which it does faster than click
    from dockyard.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
