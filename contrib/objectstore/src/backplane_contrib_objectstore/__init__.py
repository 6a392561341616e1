"""Tenant files in an object store (S3 and S3-compatible, Google Cloud Storage, Azure Blob,
and the local or in-memory stores) through obstore: the ``objectstore`` storage backend."""

from backplane_contrib_objectstore.store import ObjectFileStore

__all__ = ["ObjectFileStore"]
