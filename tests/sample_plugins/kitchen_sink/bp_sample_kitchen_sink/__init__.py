"""Sample plugin used by the kernel tests."""
