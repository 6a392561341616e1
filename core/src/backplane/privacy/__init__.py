"""Data rights: a tenant's export and deletion, one person's export and erasure.

Plugins take part through three hooks (``export_tenant_data``, ``erase_subject``,
``tenant_deleting``, see :mod:`backplane.hookspecs`); the kernel implements them for its own
tables in :mod:`backplane.defaults.privacy`. :mod:`.archive` writes the zip, :mod:`.tables`
finds every table holding a tenant's rows in the registered metadata, :mod:`.tenants` exports
and deletes tenants (``backplane tenants export|delete``), :mod:`.subjects` exports and erases
one person (``POST /api/privacy/export|erase``).
"""

from backplane.privacy.archive import ExportArchive, ExportEntryError, ExportTooLargeError
from backplane.privacy.subjects import Subject

__all__ = ["ExportArchive", "ExportEntryError", "ExportTooLargeError", "Subject"]
