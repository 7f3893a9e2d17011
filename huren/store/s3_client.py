"""One S3 bucket as the blob store needs it (boto3), with its errors translated once at this edge.

The few calls ``huren.store.blobs_s3`` makes — HEAD, PUT, a multipart upload of a spooled file,
GET as a stream, DELETE, a listing, HEAD of the bucket — on any S3-compatible server (SeaweedFS,
MinIO, Ceph RGW, a cloud's object storage; path-style addresses when an endpoint is given).
Requests are retried a bounded number of times (botocore's ``standard`` mode: connection errors,
timeouts, 5xx and throttling, with jittered backoff); what still fails is a ``huren.errors`` class
with a Chinese message naming the bucket — ``PlatformUnavailable`` (503) when the server cannot be
reached or refuses, ``NotConfigured`` when there are no credentials — never a botocore stack.
The English detail goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from huren.errors import HurenError, NotConfigured, PlatformUnavailable, Problem

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("huren.store")
T = TypeVar("T")

#: a spooled file past this size goes up in parts of this size, a few at once (bounded memory)
MULTIPART_BYTES = 8 * 1024 * 1024
UPLOAD_THREADS = 2
#: a stream's reads from a GET body
READ_CHUNK = 1024 * 1024
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset({"403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "Forbidden"})


class S3Bucket:
    """A bucket (and a key prefix in it) reached through one thread-safe boto3 client."""

    def __init__(
        self, bucket: str, *, endpoint_url: str | None = None, region: str = "us-east-1", access_key: str | None = None,
        secret_key: str | None = None, prefix: str = "", timeout: float = 30.0, retries: int = 3,
    ) -> None:
        self.bucket, self.prefix, self.retries = bucket, prefix, retries
        self.where = endpoint_url or f"AWS S3（{region}）"
        config = Config(
            region_name=region, connect_timeout=timeout, read_timeout=timeout,
            retries={"max_attempts": retries + 1, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            max_pool_connections=16,
        )
        self.client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=config,
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES, max_concurrency=UPLOAD_THREADS,
        )

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # -- the calls ------------------------------------------------------------------------------
    def head(self, name: str) -> int | None:
        """The object's size, or None when there is none."""
        def call() -> int | None:
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"]
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        return self._call("HEAD", call)

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` (durable when it returns: S3 answers a PUT once it keeps the object)."""
        self._call("PUT", lambda: self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data))

    def upload(self, name: str, path: str) -> None:
        """Store a spooled file, in parts when it is large (never whole in memory)."""
        self._call("PUT", lambda: self.client.upload_file(path, self.bucket, self.key(name), Config=self._transfer))

    def get(self, name: str) -> Body | None:
        """The object's bytes as a stream (read in chunks), or None when there is none."""
        def call() -> Body | None:
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
            return Body(self, answer["Body"])
        return self._call("GET", call)

    def delete(self, name: str) -> None:
        self._call("DELETE", lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(name)))

    def names(self) -> Iterator[str]:
        """Every object's name under the prefix (the prefix taken off), in the bucket's order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        it = iter(pages)
        while True:
            page = self._call("LIST", lambda: next(it, None))
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield obj["Key"][len(self.prefix) :]

    def check(self) -> None:
        """PlatformUnavailable unless the bucket is there and may be read."""
        self._call("HEAD", lambda: self.client.head_bucket(Bucket=self.bucket))

    def create(self) -> None:
        """Create the bucket unless it is there (a new deployment's setup; the tests)."""
        def call() -> None:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._call("CREATE", call)

    # -- errors ---------------------------------------------------------------------------------
    def _call(self, op: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except HurenError:
            raise
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self.error(op, exc) from None

    def error(self, op: str, exc: BaseException) -> HurenError:
        """The Chinese error for a failed request (its English detail logged)."""
        log.warning("S3 %s on bucket %s at %s failed: %r", op, self.bucket, self.where, exc)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            msg = "未配置对象存储的访问密钥：请设置 HUREN_S3_ACCESS_KEY 与 HUREN_S3_SECRET_KEY"
            return NotConfigured(msg, [Problem("s3_access_key", "required", msg)])
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket":
                msg = f"对象存储 {self.where} 中没有桶“{self.bucket}”：请先建立它，或改正 HUREN_S3_BUCKET"
                return PlatformUnavailable(msg, [Problem("s3_bucket", "missing", msg)])
            if code in _DENIED:
                msg = (f"对象存储 {self.where} 拒绝访问桶“{self.bucket}”（{code}）：请检查 HUREN_S3_ACCESS_KEY、"
                       "HUREN_S3_SECRET_KEY 及该密钥对此桶的读写权限")
                return PlatformUnavailable(msg, [Problem("s3", "refused", msg)])
            msg = f"对象存储 {self.where} 拒绝了请求（{op}，{code}），桶“{self.bucket}”，请稍后重试"
            return PlatformUnavailable(msg, [Problem("s3", "refused", msg)])
        msg = (f"对象存储不可用：无法连接 {self.where}（桶“{self.bucket}”，已重试 {self.retries} 次），"
               "文件暂时无法保存或读取，请稍后重试")
        return PlatformUnavailable(msg, [Problem("s3", "unavailable", msg)])


class Body:
    """A GET's body: ``read(n)`` and chunks, its network errors translated as the calls' are
    (botocore turns urllib3's read timeouts and broken streams into BotoCoreError)."""

    def __init__(self, bucket: S3Bucket, raw: StreamingBody) -> None:
        self._bucket, self._raw = bucket, raw

    def read(self, n: int = -1, /) -> bytes:
        try:
            return self._raw.read(None if n < 0 else n)
        except (BotoCoreError, OSError) as exc:
            raise self._bucket.error("GET", exc) from None

    def chunks(self) -> Iterator[bytes]:
        """The rest of the body in chunks, closed at the end (or when the reader stops)."""
        try:
            while chunk := self.read(READ_CHUNK):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._raw.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
