"""Backplane kernel: the public API that plugins may import.

Everything a plugin needs is re-exported here; any other ``backplane.*`` module is internal and
may change without notice (a test keeps first-party and sample plugins honest about this).
Heavy names (SQLAlchemy, Litestar) are resolved lazily so that importing a plugin module, which
happens for every ``backplane`` command including ``--help``, stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from backplane._contract import (
    AuthBackend,
    BillingProvider,
    EventType,
    InferenceModel,
    InferenceRuntime,
    MailTransport,
    Meter,
    Migrations,
    ModelRef,
    Permission,
    PluginInfo,
    Service,
    StaticFiles,
    StorageBackend,
    Task,
    Templates,
    Trainer,
)
from backplane.hookspecs import hookimpl

__version__ = "0.1.0"

if TYPE_CHECKING:
    from backplane.audit.chain import AuditEntry
    from backplane.audit.record import AuditActionError
    from backplane.billing.entitlements import requires_entitlement
    from backplane.billing.schemas import InvoiceItem, InvoiceOut
    from backplane.billing.usage import (
        GroupUsage,
        QuotaExceeded,
        UsageItem,
        UsageRecorder,
        UsageResult,
    )
    from backplane.billing.webhooks.signing import InvalidSignatureError, verify_signature
    from backplane.commands import pass_kernel
    from backplane.db.base import Base
    from backplane.db.commits import after_commit
    from backplane.db.rls import (
        create_tenant_table,
        disable_tenant_rls,
        drop_tenant_table,
        enable_tenant_rls,
        tenant_foreign_key,
    )
    from backplane.db.tenancy import TenantScoped
    from backplane.events import Event, UnknownEventTypeError
    from backplane.files.quota import FilesQuotaExceeded
    from backplane.files.service import FileInfo, FileNotFound, FileTooLarge, TenantFiles
    from backplane.files.storage import FileStore, ObjectInfo, ObjectMissingError
    from backplane.identity.auth import Principal, requires
    from backplane.identity.members import Member
    from backplane.inference.artifacts import ArtifactReport, ArtifactRun
    from backplane.inference.limits import ModelRejected
    from backplane.inference.load_checks import ModelRefused
    from backplane.inference.registry import RegistryError
    from backplane.inference.storage import ArtifactMissingError, ArtifactStore
    from backplane.kernel import Kernel, NoSessionError, UnknownTenantError
    from backplane.mail.compose import MailError
    from backplane.mail.transports import MailDeliveryError, MailEnvelope
    from backplane.privacy.archive import ExportArchive
    from backplane.privacy.subjects import Subject
    from backplane.secret_key import DeploymentKey
    from backplane.settings import Settings
    from backplane.tasks.context import TaskQueue

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY: dict[str, str] = {
    "AuditEntry": "backplane.audit.chain",
    "AuditActionError": "backplane.audit.record",
    "Base": "backplane.db.base",
    "after_commit": "backplane.db.commits",
    "TenantScoped": "backplane.db.tenancy",
    "enable_tenant_rls": "backplane.db.rls",
    "tenant_foreign_key": "backplane.db.rls",
    "disable_tenant_rls": "backplane.db.rls",
    "create_tenant_table": "backplane.db.rls",
    "drop_tenant_table": "backplane.db.rls",
    "Settings": "backplane.settings",
    "create_app": "backplane.app",
    "Principal": "backplane.identity.auth",
    "Member": "backplane.identity.members",
    "requires": "backplane.identity.auth",
    "Kernel": "backplane.kernel",
    "DeploymentKey": "backplane.secret_key",
    "UnknownTenantError": "backplane.kernel",
    "pass_kernel": "backplane.commands",
    "ArtifactStore": "backplane.inference.storage",
    "ArtifactMissingError": "backplane.inference.storage",
    "NoSessionError": "backplane.kernel",
    "TaskQueue": "backplane.tasks.context",
    "Event": "backplane.events",
    "UnknownEventTypeError": "backplane.events",
    "UsageRecorder": "backplane.billing.usage",
    "UsageItem": "backplane.billing.usage",
    "UsageResult": "backplane.billing.usage",
    "QuotaExceeded": "backplane.billing.usage",
    "requires_entitlement": "backplane.billing.entitlements",
    "InvoiceOut": "backplane.billing.schemas",
    "InvoiceItem": "backplane.billing.schemas",
    "GroupUsage": "backplane.billing.usage",
    "verify_signature": "backplane.billing.webhooks.signing",
    "InvalidSignatureError": "backplane.billing.webhooks.signing",
    "ExportArchive": "backplane.privacy.archive",
    "Subject": "backplane.privacy.subjects",
    "FileStore": "backplane.files.storage",
    "ObjectInfo": "backplane.files.storage",
    "ObjectMissingError": "backplane.files.storage",
    "FileInfo": "backplane.files.service",
    "FileNotFound": "backplane.files.service",
    "FileTooLarge": "backplane.files.service",
    "TenantFiles": "backplane.files.service",
    "FilesQuotaExceeded": "backplane.files.quota",
    "MailError": "backplane.mail.compose",
    "MailDeliveryError": "backplane.mail.transports",
    "MailEnvelope": "backplane.mail.transports",
    "ArtifactReport": "backplane.inference.artifacts",
    "ArtifactRun": "backplane.inference.artifacts",
    "ModelRejected": "backplane.inference.limits",
    "ModelRefused": "backplane.inference.load_checks",
    "RegistryError": "backplane.inference.registry",
}

__all__ = [
    "ArtifactMissingError",
    "ArtifactReport",
    "ArtifactRun",
    "ArtifactStore",
    "AuditActionError",
    "AuditEntry",
    "AuthBackend",
    "Base",
    "BillingProvider",
    "DeploymentKey",
    "Event",
    "EventType",
    "ExportArchive",
    "FileInfo",
    "FileNotFound",
    "FileStore",
    "FileTooLarge",
    "FilesQuotaExceeded",
    "GroupUsage",
    "InferenceModel",
    "InferenceRuntime",
    "InvalidSignatureError",
    "InvoiceItem",
    "InvoiceOut",
    "Kernel",
    "MailDeliveryError",
    "MailEnvelope",
    "MailError",
    "MailTransport",
    "Member",
    "Meter",
    "Migrations",
    "ModelRef",
    "ModelRefused",
    "ModelRejected",
    "NoSessionError",
    "ObjectInfo",
    "ObjectMissingError",
    "Permission",
    "PluginInfo",
    "Principal",
    "QuotaExceeded",
    "RegistryError",
    "Service",
    "Settings",
    "StaticFiles",
    "StorageBackend",
    "Subject",
    "Task",
    "TaskQueue",
    "Templates",
    "TenantFiles",
    "TenantScoped",
    "Trainer",
    "UnknownEventTypeError",
    "UnknownTenantError",
    "UsageItem",
    "UsageRecorder",
    "UsageResult",
    "__version__",
    "after_commit",
    "create_app",
    "create_tenant_table",
    "disable_tenant_rls",
    "drop_tenant_table",
    "enable_tenant_rls",
    "hookimpl",
    "pass_kernel",
    "requires",
    "requires_entitlement",
    "tenant_foreign_key",
    "verify_signature",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backplane' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
