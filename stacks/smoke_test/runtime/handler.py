"""Lambda entry point of the post-deploy smoke test: the shared smoke check in ``bidistream.smoke``."""

from bidistream.smoke import lambda_handler

__all__ = ["lambda_handler"]
