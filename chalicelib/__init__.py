"""taskqueue: Taskcluster's queue as a serverless application (see README.md)."""
