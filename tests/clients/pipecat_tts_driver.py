"""Pipecat's ``DeepgramSageMakerTTSService`` with its default settings speaking through v1/speak.

Usage (in .venv-pipecat): python pipecat_tts_driver.py. A minimal pipeline (the service, then a
collector) at Pipecat's default output rate:

1. ``TTSSpeakFrame(SHORT)``: the service sends Speak and Flush; its audio arrives as TTSAudioRawFrames.
2. ``TTSSpeakFrame(LONG)``, and once its first audio is in, an ``InterruptionFrame`` (what a user
   starting to talk sends): the service sends Clear; no audio payload may arrive after Cleared.
3. ``EndFrame``: the service sends Close and stops.

Prints JSON lines: ``request``, ``connected``, ``sent`` (each message the service sent), ``received``
(each JSON payload it got), ``audio_payload`` (bytes of each binary payload, with the phase),
``audio_frames`` (the TTSAudioRawFrames the collector saw, per phase: count, rates, bytes), ``done``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pipecat.services.deepgram.sagemaker.tts as tts_module
from driver_support import emit, endpoint_name, region
from pipecat.frames.frames import EndFrame, InterruptionFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat_support import Collector, redirect, run_pipeline

CONNECT_TIMEOUT = 30.0
AUDIO_TIMEOUT = 20.0  # seconds for a phase's audio (synthesis is fast; the machine is shared)
SETTLE_SECONDS = 1.5  # after Cleared: long enough for stray audio to show up if any were sent
SHORT = "Hello from a Pipecat voice agent."
LONG = " ".join(f"This is sentence number {n} of an answer the user will interrupt." for n in range(1, 30))
phase = "speak"
# Set by the first audio payload of the long answer: the interruption follows at once, so the answer is
# still being synthesized when Clear arrives however fast the machine is (polling the pipeline's frames
# let a quiet machine synthesize and deliver the whole answer first).
long_answer_started = asyncio.Event()


def record(service_module: Any) -> None:
    """Wrap the (already redirected) client so every payload both ways is reported."""
    client_class = service_module.SageMakerBidiClient

    class RecordingClient(client_class):  # type: ignore[misc, valid-type]
        async def send_json(self, data: dict[str, Any]) -> Any:
            emit("sent", message=data, phase=phase)
            return await super().send_json(data)

        async def receive_response(self) -> Any:
            result = await super().receive_response()
            payload = getattr(getattr(result, "value", None), "bytes_", None)
            if payload:
                try:
                    emit("received", message=json.loads(payload.decode()), phase=phase)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    emit("audio_payload", bytes=len(payload), phase=phase)
                    if phase == "interrupted":
                        long_answer_started.set()
                        # Payloads the SDK has buffered come back without a wait, and Pipecat's receive
                        # loop asks again at once, so the interruption (another task) may not run until
                        # the buffer is empty. Seen once in CI on a busy machine: the whole answer (116 s
                        # of audio) came in before Cleared, its last payloads within 1 ms of each other.
                        # A read over a real network waits between payloads; this one yields instead.
                        await asyncio.sleep(0)
            return result

    service_module.SageMakerBidiClient = RecordingClient


async def main() -> None:
    global phase
    redirect(tts_module)
    record(tts_module)
    tts = tts_module.DeepgramSageMakerTTSService(endpoint_name=endpoint_name(), region=region())
    connected = asyncio.Event()

    @tts.event_handler("on_connected")
    async def on_connected(_service: object) -> None:
        emit("connected")
        connected.set()

    async def audio_frames(collector: Collector, count: int) -> None:
        async with asyncio.timeout(AUDIO_TIMEOUT):
            while len(collector.of_kind(TTSAudioRawFrame)) <= count:
                await collector.wait_for(TTSAudioRawFrame, 0.1)
                await asyncio.sleep(0.05)

    def report(collector: Collector, since: int) -> int:
        frames = collector.of_kind(TTSAudioRawFrame)[since:]
        emit(
            "audio_frames",
            phase=phase,
            count=len(frames),
            rates=sorted({frame.sample_rate for frame in frames}),
            channels=sorted({frame.num_channels for frame in frames}),
            bytes=sum(len(frame.audio) for frame in frames),
        )
        return since + len(frames)

    async def feed(worker: PipelineWorker, collector: Collector) -> None:
        global phase
        await asyncio.wait_for(connected.wait(), CONNECT_TIMEOUT)
        await worker.queue_frame(TTSSpeakFrame(SHORT))
        await audio_frames(collector, 0)
        await asyncio.sleep(SETTLE_SECONDS)  # the rest of the short answer
        seen = report(collector, 0)
        phase = "interrupted"
        await worker.queue_frame(TTSSpeakFrame(LONG))
        await asyncio.wait_for(long_answer_started.wait(), AUDIO_TIMEOUT)
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(SETTLE_SECONDS)
        seen = report(collector, seen)
        phase = "after"
        await asyncio.sleep(SETTLE_SECONDS)
        report(collector, seen)
        phase = "end"
        await worker.queue_frame(EndFrame())

    run = await run_pipeline(tts, feed, collect=(TTSAudioRawFrame,), params=PipelineParams())
    emit("done", errors=len(run.errors))


if __name__ == "__main__":
    asyncio.run(main())
