"""Live speech-to-text at ``v1/listen``: pocketsphinx behind Deepgram's streaming messages."""

from model_server.models.transcribe.model import TranscribeModel

__all__ = ["TranscribeModel"]
