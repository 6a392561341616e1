"""Tenant files: a streaming store behind ``register_storage_backends`` (:mod:`.storage`), the
``kernel.files`` service (:mod:`.service`), the ``files.bytes`` quota (:mod:`.quota`), RFC 9110
downloads (:mod:`.ranges`, :mod:`.routes`), signed URLs (:mod:`.signing`) and the retention
sweep (:mod:`.sweep`). Plugins use ``kernel.files`` and the names ``backplane`` exports only."""
