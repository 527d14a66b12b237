"""Streaming text to speech at ``v1/speak``: espeak-ng behind Deepgram's streaming TTS messages."""

from model_server.models.speak.model import SpeakModel

__all__ = ["SpeakModel"]
