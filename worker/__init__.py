"""The reference worker: claims tasks from a task queue, runs their generic-worker-style payloads
and reports the outcome, with a live log and artifacts on S3 (issue 5; README, "The worker").

Pure rules (payload validation, reclaim timing, exit status → outcome) live in `payload` and
`rules`; the rest is thin I/O: `queue` (API calls, uploads), `claiming` (claimWork or SQS hints),
`livelog`, `task_run` (one claimed run), `worker` (the claim loop, capacity, shutdown), `config`.
"""
