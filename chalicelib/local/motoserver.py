"""The AWS stand-in: moto in server mode, with motofast's patches, until told to stop.

    python -m chalicelib.local.motoserver --port 5000

Exits on SIGINT/SIGTERM, and by itself when the process that started it is gone, so a killed
embedded stack never leaves it behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from . import motofast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    motofast.apply()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            break
    server.stop()


if __name__ == "__main__":
    main()
