"""Lambda entry points: the post-deploy trigger and the streaming canary (``bidistream.smoke``)."""

from bidistream.smoke import canary_handler, lambda_handler

__all__ = ["canary_handler", "lambda_handler"]
