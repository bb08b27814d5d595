"""`python -m numa_migrate` runs the command line."""

from numa_migrate.cli.main import main

main()
