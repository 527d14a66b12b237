"""bidistream: stream to a SageMaker AI endpoint both ways with the real SDK, or to a local stand-in.

The modules the post-deploy smoke test imports (``client``, ``errors``, ``smoke``) use only the
standard library and the SageMaker runtime SDK, so they can ship in a Lambda bundle on their own.
"""
