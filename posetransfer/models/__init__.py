"""Model architectures (one file each) and the registry that builds them by name."""
