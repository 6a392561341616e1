"""Account mail flows: invitations by e-mail, password resets and e-mail verification.

Each flow mails a one-time, expiring link through the mail service (:mod:`backplane.mail`).
The link's token is stored only as its SHA-256; using it is one conditional ``UPDATE`` that
exactly one of any number of concurrent uses wins (PostgreSQL's row lock, SQLite's write lock
serialise them; the losers find it used). It lives beside ``identity`` rather than inside it
because it sends mail, and the mail service sits above identity in the kernel's layers.
"""
