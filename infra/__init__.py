"""Deploying a stage to AWS: what Chalice does not own, both routes, the policies (see README.md)."""
