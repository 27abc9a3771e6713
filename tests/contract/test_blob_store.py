"""BlobStore: deleting artifacts' objects, and the URLs clients upload and download with."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from tests.contract.backends import Bucket

KEY = "task-a/0/public/build/app.txt"


def test_deleted_objects_are_gone_and_a_missing_one_counts_as_deleted(bucket: Bucket) -> None:
    bucket.upload(KEY, b"bytes")
    bucket.upload("task-a/0/keep", b"kept")
    assert bucket.exists(KEY)
    assert bucket.blobs.delete(bucket.name, [KEY, "task-a/0/never-uploaded", KEY]) == []
    assert not bucket.exists(KEY)
    assert bucket.exists("task-a/0/keep")


def test_nothing_is_deleted_from_a_bucket_that_does_not_exist(bucket: Bucket) -> None:
    assert bucket.blobs.delete("no-such-bucket-here", ["a", "b", "a"]) == ["a", "b"]


def test_urls_name_the_object_and_differ_by_direction(bucket: Bucket) -> None:
    put = bucket.blobs.put_url(bucket.name, KEY, "text/plain", timedelta(minutes=45))
    get = bucket.blobs.get_url(bucket.name, KEY, timedelta(minutes=30))
    for url in (put, get):
        parts = urlsplit(url)
        assert bucket.name in parts.netloc + parts.path and parts.path.endswith("/public/build/app.txt")
    assert put != get
