"""Subcommands of the ``semjscc`` CLI, one module each; heavy imports stay inside handlers."""
