"""A voice loop through a SageMaker endpoint with the real SDK: text to v1/speak, its audio to
v1/listen, the transcript back. Used by the end-to-end voice-loop test and by bench_speak."""

from __future__ import annotations

import dataclasses
import json

from aws_sdk_sagemaker_runtime_http2.models import ModelStreamError  # type: ignore[import-untyped]

from bidistream.client import Part, StreamTarget, Timeouts, open_stream
from bidistream.speech import synthesize

#: v1/listen decodes 16 kHz linear16, so v1/speak is asked for exactly that.
SPEAK_QUERY = "encoding=linear16&sample_rate=16000"
LISTEN_QUERY = "encoding=linear16&sample_rate=16000"
SAMPLE_RATE = 16000
CHUNK_BYTES = 3200  # 100 ms
#: Silence around the speech, as a microphone would give: v1/listen finds the end of speech in it.
LEAD_SILENCE = bytes(SAMPLE_RATE // 2 * 2)
TRAIL_SILENCE = bytes(SAMPLE_RATE * 2)
NORMAL_CLOSURE = "1000"


async def speak(target: StreamTarget, text: str, *, voice: str = "aura-2-thalia-en") -> bytes:
    """The audio v1/speak answers for ``text`` (Speak, then Close; the model closes the stream)."""
    speak_target = dataclasses.replace(
        target, invocation_path="v1/speak", query_string=f"model={voice}&{SPEAK_QUERY}"
    )
    return await synthesize(speak_target, [text])


async def listen(target: StreamTarget, pcm: bytes) -> str:
    """The final transcript v1/listen gives for 16 kHz linear16 ``pcm``."""
    listen_target = dataclasses.replace(target, invocation_path="v1/listen", query_string=LISTEN_QUERY)
    audio = LEAD_SILENCE + pcm + TRAIL_SILENCE
    finals: list[str] = []
    async with open_stream(listen_target, Timeouts()) as stream:
        for offset in range(0, len(audio), CHUNK_BYTES):
            await stream.send(Part.binary(audio[offset : offset + CHUNK_BYTES]))
        await stream.send(Part.text(json.dumps({"type": "CloseStream"})))
        try:
            while (part := await stream.receive()) is not None:
                message = json.loads(part.data)
                if message.get("type") == "Results" and message["is_final"]:
                    finals.append(message["channel"]["alternatives"][0]["transcript"])
        except ModelStreamError as error:
            if error.error_code != NORMAL_CLOSURE:
                raise
    return " ".join(filter(None, finals))


async def round_trip(target: StreamTarget, text: str, *, voice: str = "aura-2-thalia-en") -> str:
    return await listen(target, await speak(target, text, voice=voice))
