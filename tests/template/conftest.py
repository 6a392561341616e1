"""The helpdesk under ``helpdesk/`` is a plugin's own test suite, not the repository's: it runs in
``tox -e template`` (check_template.py), laid over its render and installed from its wheel."""

collect_ignore = ["helpdesk"]
