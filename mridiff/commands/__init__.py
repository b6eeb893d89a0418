"""Sub-commands of the ``mridiff`` CLI; each module exposes ``register(subparsers)``."""
