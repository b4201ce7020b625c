"""``python -m cellucid_nb`` runs the command-line interface."""

from cellucid_nb.cli import main

raise SystemExit(main())
