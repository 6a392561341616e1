"""Mail: messages composed with the standard ``email`` package, stored and delivered through
the task outbox, by a transport chosen by ``mail.transport`` (``register_mail_transports``),
DKIM-signed per sending domain.

``kernel.mail.send(...)`` (:mod:`backplane.mail.service`) composes a message from the tenant's
sender identity, stores it (``backplane_mail_messages``) and queues its delivery in the caller's
transaction: nothing is sent for a transaction that rolls back, and nothing is sent inside a
request. Delivery, its retries and the at-most-once guarantee across a worker's death are in
:mod:`backplane.mail.delivery`.
"""
