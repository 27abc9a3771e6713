"""A task's log: written to a local file, uploaded whole to `public/logs/live.log` (an s3 artifact)
every few seconds while it grows, and once more when the task ends.

S3 has no append, so each upload replaces the object; readers see the log as of the last
upload. The presigned PUT URL lasts 45 minutes; a repeated createArtifact (same contentType and
expiry, which the queue accepts as idempotent) hands out a fresh one before it runs out.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .queue import QueueCalls, TaskclusterFailure, brief, upload

NAME = "public/logs/live.log"
CONTENT_TYPE = "text/plain; charset=utf-8"
URL_MARGIN = timedelta(minutes=5)  # ask for a new PUT URL this long before the old one ends

log = logging.getLogger(__name__)


class LiveLog:
    def __init__(self, path: Path, task_id: str, run_id: int, expires: str, interval: float) -> None:
        self.path = path
        self.task_id, self.run_id, self.expires = task_id, run_id, expires
        self.interval = interval
        self._file = path.open("ab")
        self._lock = threading.Lock()
        self._uploaded_size = -1
        self._put_url: str | None = None
        self._url_until = datetime.min.replace(tzinfo=UTC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queue: QueueCalls | None = None

    def write(self, data: bytes) -> None:
        with self._lock:
            self._file.write(data)
            self._file.flush()

    def line(self, text: str) -> None:
        self.write(f"[taskqueue {datetime.now(UTC).strftime('%H:%M:%S')}] {text}\n".encode())

    def start(self, queue: QueueCalls) -> None:
        """Create the artifact, upload what is there, and keep uploading every `interval`."""
        self.queue = queue
        self.upload()
        self._thread = threading.Thread(target=self._keep_uploading, name=f"live-log-{self.task_id}", daemon=True)
        self._thread.start()

    def _keep_uploading(self) -> None:
        while not self._stop.wait(self.interval):
            self.upload()

    def upload(self) -> bool:
        """Upload the log if it changed; False when it could not be (logged, never raised)."""
        if self.queue is None:
            return False
        with self._lock:
            size = self.path.stat().st_size
            if size == self._uploaded_size:
                return True
            data = self.path.read_bytes()
        try:
            if self._put_url is None or datetime.now(UTC) > self._url_until - URL_MARGIN:
                answer = self.queue.create_s3_artifact(self.task_id, self.run_id, NAME, self.expires, CONTENT_TYPE)
                self._put_url = answer["putUrl"]
                self._url_until = datetime.fromisoformat(answer["expires"].replace("Z", "+00:00"))
            upload(self._put_url, data, CONTENT_TYPE)
        except (TaskclusterFailure, OSError) as e:  # requests' errors are OSErrors
            log.warning("live-log-upload-failed task=%s run=%s error=%s", self.task_id, self.run_id, brief(e))
            return False
        self._uploaded_size = len(data)
        return True

    def close(self) -> bool:
        """Stop the periodic uploads and upload the complete log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._file.close()
        return self.upload()
