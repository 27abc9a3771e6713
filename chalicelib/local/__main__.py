"""Run taskqueue's embedded stack on this machine.

    python -m chalicelib.local serve [--port 8000]   # the stack, in the foreground (make serve)
    python -m chalicelib.local run [--port 8000]     # the stack, local workers, a task graph (make run)
    python -m chalicelib.local events --aws URL      # follow a running stack's task events

Settings come from TASKQUEUE_* environment variables (README.md). Ctrl-C (SIGINT) or SIGTERM
stops everything the command started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from .stack import EmbeddedStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the embedded stack in the foreground"),
        ("run", "run the stack, local workers and an example task graph"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--port", type=int, default=8000, help="HTTP port of the API (default 8000)")
        p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        if name == "run":
            p.add_argument("--exit", action="store_true", help="stop after the demo instead of serving on")
            p.add_argument(
                "--workers", type=int, default=2, help="most worker processes the demo's pool may run (default 2)"
            )
    events = sub.add_parser(
        "events",
        help="print a running stack's task events as they happen",
        description="print a running stack's task events as they happen (one JSON line each)",
    )
    events.add_argument("--aws", required=True, help="the AWS stand-in's URL, as `serve` prints it")
    events.add_argument("--once", action="store_true", help="print what is waiting, then stop")
    args = parser.parse_args(argv)
    if args.command == "events":
        return follow_events(args.aws, args.once)

    if args.command == "run":  # the demo shows tasks and workers itself; warnings and errors still show
        os.environ.setdefault("TASKQUEUE_LOG_LEVEL", "WARNING")
    stack = EmbeddedStack(port=args.port, host=args.host)
    started = time.monotonic()

    def on_signal(signum: int, frame: object) -> None:
        stack._stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        print(f"taskqueue embedded stack ready in {time.monotonic() - started:.1f}s", flush=True)
        print(f"  root URL:  {stack.root_url}   (TASKCLUSTER_ROOT_URL={stack.root_url})", flush=True)
        print(f"  inspector: {stack.root_url}/inspector/   (the web inspector; Sign in there for actions)", flush=True)
        print(f"  AWS stand-in: {stack.aws_endpoint}", flush=True)
        creds = stack.credentials
        print(f"  root client: TASKCLUSTER_CLIENT_ID={creds['clientId']}", flush=True)
        print(f"               TASKCLUSTER_ACCESS_TOKEN={creds['accessToken']}", flush=True)
        if args.command == "run":
            from .demo import TASK_QUEUE, follow_pool, run_demo

            ok = run_demo(stack.root_url, creds, stack._stop, args.workers, stack.provider.work_dir)
            if args.exit:
                return 0 if ok else 1
            if not stack._stop.is_set():  # not interrupted during the demo
                print(f"serving (the provisioner starts workers again for new tasks on {TASK_QUEUE}); "
                      "press Ctrl-C to stop", flush=True)  # fmt: skip
                follow_pool(stack.root_url, creds, args.workers, stack._stop)  # until Ctrl-C
                stack.wait()
            return 0
        print("serving; press Ctrl-C to stop", flush=True)
        stack.wait()
        return 0
    finally:
        stack.stop()
        print("stopped", flush=True)


def follow_events(aws_url: str, once: bool) -> int:
    """Task events are copied to an SQS queue on the stand-in (the tap); print and consume them."""
    import json
    import os

    import boto3

    from ..config import Settings
    from .bootstrap import event_tap_name

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "embedded")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "embedded")
    settings = Settings.from_env()
    sqs = boto3.client("sqs", endpoint_url=aws_url, region_name=settings.region)
    url = sqs.get_queue_url(QueueName=event_tap_name(settings))["QueueUrl"]
    try:
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0 if once else 5)
            for m in msgs.get("Messages", []):
                event = json.loads(m["Body"])
                print(json.dumps({"event": event["detail-type"], **event["detail"]}), flush=True)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if once and not msgs.get("Messages"):
                return 0
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
