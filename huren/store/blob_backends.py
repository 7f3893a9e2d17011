"""Which blob store a deployment uses (``HUREN_BLOB_BACKEND``): the directory of
``huren.store.blobs`` (the embedded default) or the bucket of ``huren.store.blobs_s3``."""

from __future__ import annotations

from huren.crypto.aead import FieldCipher
from huren.settings import Settings
from huren.store.blobs import BlobStore


def open_blob_store(settings: Settings, cipher: FieldCipher | None) -> BlobStore:
    """The blob store a deployment configured: the directory ``blob_dir`` (``HUREN_BLOB_BACKEND=local``,
    the default) or a bucket shared by every node (``s3``: ``huren.store.blobs_s3``; ``blob_dir``
    then only spools this node's incoming streamed files)."""
    if settings.blob_backend != "s3":
        return BlobStore(settings.blob_dir, cipher=cipher)
    from huren.store.blobs_s3 import S3BlobStore  # boto3 loaded only where S3 is used
    from huren.store.s3_client import S3Bucket

    assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
    bucket = S3Bucket(
        settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
        access_key=settings.s3_access_key, secret_key=settings.s3_secret_key, prefix=settings.s3_prefix,
        timeout=settings.s3_timeout_seconds, retries=settings.s3_retries,
    )
    return S3BlobStore(settings.blob_dir, bucket, cipher=cipher)
