"""``kernel.files``: a tenant's files, the only way plugins store and read them.

Saving streams the bytes into the store while hashing them, counting them against
``files.max_upload_bytes`` and sniffing their type; only then, in the caller's transaction,
the tenant's ``files.bytes`` level is raised under its limit and the metadata row inserted.
A refusal anywhere deletes what was written; an upload whose transaction rolls back later
leaves an object no row names, which the retention task removes (``files.keep_deleted_s``).
Deleting marks the row and lowers the level at once; the retention task removes the object.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import and_, or_, select, update

from backplane.files.detect import SNIFF_BYTES, detect_content_type
from backplane.files.models import StoredFile
from backplane.files.quota import METER, FilesQuotaExceeded, add_bytes, hard_limit, stored_bytes
from backplane.files.storage import FileStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from backplane.billing.usage import UsageRecorder
    from backplane.identity.holder import IdentityHolder
    from backplane.settings import FilesSettings

MAX_NAME_LENGTH = 255


class FileNotFound(LookupError):  # noqa: N818 - the HTTP status it becomes
    """No file with that id in this tenant (or it was deleted)."""


class FileTooLarge(Exception):  # noqa: N818 - the HTTP status it becomes (413)
    """The upload is larger than the limit; nothing of it was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {limit} bytes")
        self.limit = limit


class FileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A stored file's metadata, as the API shows it."""

    id: uuid.UUID
    name: str
    content_type: str
    """Detected from the file's bytes."""
    size: int
    sha256: str
    created_at: datetime
    owner: str
    """The plugin that stored it."""


class SignedUrl(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    """Absolute path (``/api/files/<id>/signed?sig=...``): prefix it with the server's origin."""
    expires_at: datetime


class OpenedFile:
    """A file found for reading: ``info``, and ``read(start, end)`` streaming ``[start, end)``
    (``end`` None: to the end) from the store."""

    def __init__(self, info: FileInfo, store: FileStore, key: str) -> None:
        self.info, self._store, self._key = info, store, key

    def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._store.read(self._key, start, end)


def info_of(row: StoredFile) -> FileInfo:
    created = row.created_at
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return FileInfo(
        id=row.id,
        name=row.name,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        created_at=created,
        owner=row.owner,
    )


def clean_name(name: str | None) -> str:
    """A display name from what the client sent: its last path segment, no control
    characters, at most 255 characters; ``file`` when nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return base[:MAX_NAME_LENGTH] or "file"


class _Measured:
    """Passes chunks through while hashing, counting (refusing past ``limit``) and keeping
    the head for type detection."""

    def __init__(self, chunks: AsyncIterable[bytes], limit: int) -> None:
        self.chunks, self.limit = chunks, limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = b""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self.limit:
                raise FileTooLarge(self.limit)
            self.digest.update(chunk)
            if len(self.head) < SNIFF_BYTES:
                self.head += chunk[: SNIFF_BYTES - len(self.head)]
            yield chunk


class TenantFiles:
    """One tenant's files in one transaction: what ``kernel.files`` is."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        store: FileStore,
        settings: FilesSettings,
        usage: UsageRecorder,
        identity: IdentityHolder,
        owner: str,
        created_by: uuid.UUID | None = None,
    ) -> None:
        self._session, self._tenant_id, self._store = session, tenant_id, store
        self._settings, self._usage, self._identity = settings, usage, identity
        self._owner, self._created_by = owner, created_by

    async def save(
        self,
        chunks: AsyncIterable[bytes],
        *,
        name: str | None = None,
        max_bytes: int | None = None,
        expected_size: int | None = None,
    ) -> FileInfo:
        """Store what ``chunks`` yields as a new file; its metadata.

        ``max_bytes`` lowers ``files.max_upload_bytes`` for this file; ``expected_size`` (a
        request's ``Content-Length``) refuses early what cannot fit. :class:`FileTooLarge`
        past the limit, :class:`FilesQuotaExceeded` past the tenant's ``files.bytes`` hard
        limit; either way nothing is kept."""
        limit = min(max_bytes or self._settings.max_upload_bytes, self._settings.max_upload_bytes)
        if expected_size is not None and expected_size > limit:
            raise FileTooLarge(limit)
        quota = await hard_limit(self._session, self._tenant_id)
        if quota is not None and expected_size is not None:
            used = await stored_bytes(self._session, self._tenant_id)
            if used + expected_size > quota:
                raise FilesQuotaExceeded(quota, used, expected_size)
        file_id = uuid.uuid4()
        key = f"{self._tenant_id}/{file_id}"
        measured = _Measured(chunks, limit)
        await self._store.write(key, aiter(measured))
        try:
            level = await add_bytes(self._session, self._tenant_id, measured.size, quota)
            row = StoredFile(
                id=file_id,
                tenant_id=self._tenant_id,
                name=clean_name(name),
                content_type=detect_content_type(measured.head),
                size=measured.size,
                sha256=measured.digest.hexdigest(),
                storage_key=key,
                owner=self._owner,
                created_by=self._created_by,
                created_at=datetime.now(UTC).replace(microsecond=0),
            )
            self._session.add(row)
            await self._session.flush()
            await self._usage.record(METER, level, transaction_id=f"files.saved:{file_id}")
        except BaseException:
            await self._store.delete(key)
            raise
        return info_of(row)

    async def _row(self, file_id: uuid.UUID) -> StoredFile:
        row = await self._session.scalar(
            select(StoredFile).where(StoredFile.id == file_id, StoredFile.deleted_at.is_(None))
        )
        if row is None:
            raise FileNotFound(f"no file {file_id}")
        return row

    async def get(self, file_id: uuid.UUID) -> FileInfo:
        """The file's metadata; :class:`FileNotFound` if this tenant has no such file."""
        return info_of(await self._row(file_id))

    async def list(self, *, limit: int = 100, after: uuid.UUID | None = None) -> list[FileInfo]:
        """The tenant's files, newest first; ``after`` (the last id of a page) pages on.
        :class:`FileNotFound` when ``after`` names no file of the tenant."""
        query = select(StoredFile).where(StoredFile.deleted_at.is_(None))
        if after is not None:
            last = await self._row(after)
            query = query.where(
                or_(
                    StoredFile.created_at < last.created_at,
                    and_(StoredFile.created_at == last.created_at, StoredFile.id > last.id),
                )
            )
        query = query.order_by(StoredFile.created_at.desc(), StoredFile.id).limit(limit)
        return [info_of(row) for row in await self._session.scalars(query)]

    async def open(self, file_id: uuid.UUID) -> OpenedFile:
        """The file's metadata and a reader of its bytes that needs no session (a response
        streams after the request's transaction ended); :class:`FileNotFound` if none."""
        row = await self._row(file_id)
        return OpenedFile(info_of(row), self._store, row.storage_key)

    async def delete(self, file_id: uuid.UUID) -> None:
        """Delete the file: gone for the tenant at commit (its bytes leave the quota then);
        the retention task removes its object."""
        size = (
            await self._session.execute(
                update(StoredFile)
                .where(StoredFile.id == file_id, StoredFile.deleted_at.is_(None))
                .values(deleted_at=datetime.now(UTC))
                .returning(StoredFile.size)
            )
        ).scalar()
        if size is None:
            raise FileNotFound(f"no file {file_id}")
        level = await add_bytes(self._session, self._tenant_id, -size, None)
        await self._usage.record(METER, level, transaction_id=f"files.deleted:{file_id}")

    async def signed_url(self, file_id: uuid.UUID, expires_in_s: int | None = None) -> SignedUrl:
        """A URL that downloads the file without ``Authorization`` until it expires
        (``files.signed_url_ttl_s`` by default, at most ``files.signed_url_max_ttl_s``)."""
        from backplane.files.signing import sign

        ttl = self._settings.signed_url_ttl_s if expires_in_s is None else expires_in_s
        if not 0 < ttl <= self._settings.signed_url_max_ttl_s:
            raise ValueError(
                f"expires_in_s must be between 1 and {self._settings.signed_url_max_ttl_s} "
                "(files.signed_url_max_ttl_s)"
            )
        await self._row(file_id)
        expires_at = int(time.time()) + ttl
        signature = sign(await self._identity.get(), self._tenant_id, file_id, expires_at)
        return SignedUrl(
            url=f"/api/files/{file_id}/signed?sig={signature}",
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        )
