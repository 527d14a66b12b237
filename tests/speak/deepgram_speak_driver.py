"""Deepgram's Python SDK speaking to our v1/speak directly (no SageMaker in between): its own connect
keywords, its own send methods, and every message it receives validated against its typed models.

Usage (in .venv-deepgram): python deepgram_speak_driver.py ws://127.0.0.1:PORT
Prints one JSON line per message received: ``{"type": ..., "problems": [...]}`` for JSON messages
(``problems`` lists what does not match the SDK model: a missing field, a wrong type, an extra field),
``{"type": "audio", "bytes": N}`` for each run of audio, and ``{"type": "closed"}`` at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.speak.v1.types import (
    SpeakV1Clear,
    SpeakV1Cleared,
    SpeakV1Close,
    SpeakV1Flush,
    SpeakV1Flushed,
    SpeakV1Metadata,
    SpeakV1Text,
    SpeakV1Warning,
)
from pydantic import BaseModel, ValidationError

MODELS: dict[str, type[BaseModel]] = {
    "Metadata": SpeakV1Metadata,
    "Flushed": SpeakV1Flushed,
    "Cleared": SpeakV1Cleared,
    "Warning": SpeakV1Warning,
}
WAIT_SECONDS = 20.0


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def problems(raw: dict[str, Any]) -> list[str]:
    model = MODELS.get(raw.get("type", ""))
    if model is None:
        return [f"no SDK model for type {raw.get('type')!r}"]
    found = []
    try:
        model.model_validate(raw, strict=True)
    except ValidationError as error:
        found += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    found += [f"extra field {name!r}" for name in sorted(set(raw) - set(model.model_fields))]
    return found


async def main(base: str) -> None:
    environment = DeepgramClientEnvironment(base=base, production=base, agent=base, agent_rest=base)
    client = AsyncDeepgramClient(api_key="local", environment=environment, reconnect=False)
    async with client.speak.v1.connect(
        model="aura-2-thalia-en", encoding="linear16", sample_rate=24000
    ) as socket:
        websocket = socket._websocket  # the raw frames, to validate strictly (the SDK parses leniently)
        audio = 0

        seen: list[str] = []

        async def read_until(kind: str, count: int = 1) -> None:
            """Read until ``count`` more messages of type ``kind`` have come (audio is counted)."""
            nonlocal audio
            target = seen.count(kind) + count
            while seen.count(kind) < target:
                message = await asyncio.wait_for(websocket.recv(), WAIT_SECONDS)
                if isinstance(message, bytes):
                    audio += len(message)
                    continue
                if audio:
                    emit(type="audio", bytes=audio)
                    audio = 0
                raw = json.loads(message)
                seen.append(str(raw.get("type")))
                emit(type=raw.get("type"), problems=problems(raw), message=raw)

        await read_until("Metadata")
        await socket.send_text(SpeakV1Text(text="Hello from the Deepgram SDK."))
        await socket.send_flush(SpeakV1Flush(type="Flush"))
        await read_until("Flushed")
        await socket.send_text(SpeakV1Text(text="This text is cleared before it is flushed"))
        await socket.send_clear(SpeakV1Clear(type="Clear"))
        await read_until("Cleared")
        for _ in range(20):  # with the first, 21 in a minute: the last one is over the limit
            await socket.send_flush()
        await read_until("Flushed", 19)  # the session's first flush and 19 of these: 20 in a minute
        if "Warning" not in seen:
            await read_until("Warning")
        await socket.send_text(SpeakV1Text(text="Goodbye."))
        await socket.send_close(SpeakV1Close(type="Close"))
        try:
            while True:
                message = await asyncio.wait_for(websocket.recv(), WAIT_SECONDS)
                audio += len(message) if isinstance(message, bytes) else 0
        except Exception:  # the server's close ends the loop (ConnectionClosedOK)
            pass
        emit(type="audio", bytes=audio)
        emit(type="closed", code=websocket.close_code)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
