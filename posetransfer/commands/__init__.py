"""Subcommands of the ``posetransfer`` CLI (see ``posetransfer.cli``): one module each, thin wrappers."""
