"""A plugin whose import fails: the kernel must skip it and keep starting."""

import bp_sample_this_module_does_not_exist  # noqa: F401
