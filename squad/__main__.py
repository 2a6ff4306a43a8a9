"""`python -m squad` is the `squad` command."""

from squad.cli import main

raise SystemExit(main())
