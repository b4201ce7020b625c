"""The exporter: input validation, one writer per part, the runner, and prepare()."""
