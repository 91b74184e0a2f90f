"""``python -m harness``: the command-line interface."""
from .frontends.cli import main

if __name__ == "__main__":  # guarded: a multiprocessing child may import this module
    raise SystemExit(main())
