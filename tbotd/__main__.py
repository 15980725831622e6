"""`python -m tbotd` is the same as the `tbotd` console script."""

from tbotd.cli import main

raise SystemExit(main())
