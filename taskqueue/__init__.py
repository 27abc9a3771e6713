"""taskqueue's command line (`python -m taskqueue`, docs/cli.md): a client of any Taskcluster-compatible
deployment through the official `taskcluster` client."""
