"""Background tasks: dramatiq actors fed from a transactional outbox.

``TaskQueue.enqueue`` writes an outbox row in the caller's transaction; a relay hands committed
rows to the broker (RabbitMQ, Redis, or an in-process broker in embedded mode); a worker runs the
actor in a session bound to the enqueuing tenant and marks the row done *in the same
transaction* as the actor's own writes, so a redelivered duplicate is acknowledged unrun.
"""
