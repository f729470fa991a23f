import sys

if len(sys.argv) > 1 and sys.argv[1] == "runtime":
    # The OCI runtime is on every container start's hot path: dispatch it before click is imported.
    from dockyard.runtime.cli import main as runtime_main

    runtime_main(sys.argv[2:])

from dockyard.cli import main

main()
