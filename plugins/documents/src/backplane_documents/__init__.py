"""Backplane documents: per-tenant, versioned templates rendered to PDF, HTML and DOCX.

The public interface other modules of the plugin (bulk jobs, processing) build on:
``backplane_documents.rendering`` (``render``, ``Rendered``, ``RenderLimits``, ``RenderError``)
and ``backplane_documents.fields.validate_fields``.
"""
