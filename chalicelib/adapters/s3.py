"""S3, where s3 artifacts' bytes live: presigned URLs for clients, deletion for the sweeper.

Presigning is computed locally (no request): the URL carries a SigV4 signature made with the
function's credentials and is valid for `expires_in`. The client's endpoint is the one clients
reach: S3's on AWS, the stand-in's (AWS_ENDPOINT_URL, or AWS_ENDPOINT_URL_S3) on the embedded stack.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class S3Blobs:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3  # a boto3 S3 client configured with signature_version="s3v4"

    def put_url(self, bucket: str, key: str, content_type: str, expires_in: timedelta) -> str:
        # Content-Type is signed: the upload must send the same one (Taskcluster's contract).
        url: str = self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=int(expires_in.total_seconds()),
        )
        return url

    def get_url(self, bucket: str, key: str, expires_in: timedelta) -> str:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expires_in.total_seconds())
        )
        return url

    def delete(self, bucket: str, keys: Sequence[str]) -> list[str]:
        """Delete objects; the keys that could not be deleted (a missing object is deleted)."""
        failed: list[str] = []
        for i in range(0, len(keys), DELETE_BATCH):
            batch = list(dict.fromkeys(keys[i : i + DELETE_BATCH]))
            try:
                response = self._s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except (BotoCoreError, ClientError):
                # Keep the rows: the next sweep tries again (their objects must not leak).
                log.exception("could not delete %d objects from s3://%s", len(batch), bucket)
                failed += batch
                continue
            for error in response.get("Errors", []):
                if error.get("Code") == "NoSuchKey":  # some S3-compatible stores say so; S3 does not
                    continue
                log.warning("could not delete s3://%s/%s: %s", bucket, error.get("Key"), error.get("Code"))
                failed.append(error["Key"])
        return failed
