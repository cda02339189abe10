"""The fault soak: the whole platform under load while processes and stores fail."""
