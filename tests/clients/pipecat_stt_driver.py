"""Pipecat's ``DeepgramSageMakerSTTService`` with its default settings, fed 20 ms frames at real time.

Usage (in .venv-pipecat): python pipecat_stt_driver.py CLIP.wav [SETTINGS_JSON]; SETTINGS_JSON, if
given, are ``DeepgramSageMakerSTTService.Settings`` fields set as a user sets them (only the failure
test uses it; the main test keeps every default). Prints JSON lines: ``request`` (the
invocation path and query the service sent), ``connected``, one ``transcription`` per
TranscriptionFrame or InterimTranscriptionFrame, ``error_frame`` per ErrorFrame, then ``done``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pipecat.services.deepgram.sagemaker.stt as stt_module
from driver_support import FRAME_SECONDS, Clip, emit, endpoint_name, fail, real_time, region
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, InterimTranscriptionFrame, TranscriptionFrame
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat_support import Collector, redirect, run_pipeline

CONNECT_TIMEOUT = 30.0  # seconds for the service's session to open (container + endpoint on 2 busy cores)
#: After the clip, a live call keeps sending (silent) audio; this long at most for a final transcript.
FINAL_TIMEOUT = 10.0


async def main(clip: Clip, settings: dict[str, object]) -> None:
    redirect(stt_module)
    stt = stt_module.DeepgramSageMakerSTTService(
        endpoint_name=endpoint_name(),
        region=region(),
        settings=stt_module.DeepgramSageMakerSTTService.Settings(**settings) if settings else None,
    )
    settled = asyncio.Event()  # the session opened, or failed to
    opened: list[bool] = []

    @stt.event_handler("on_connected")
    async def on_connected(_service: object) -> None:
        emit("connected")
        opened.append(True)
        settled.set()

    @stt.event_handler("on_connection_error")
    async def on_connection_error(_service: object, error: str) -> None:
        emit("connection_error", error=error)
        settled.set()

    def audio(pcm: bytes) -> InputAudioRawFrame:
        return InputAudioRawFrame(audio=pcm, sample_rate=clip.sample_rate, num_channels=clip.channels)

    async def feed(worker: PipelineWorker, collector: Collector) -> None:
        await asyncio.wait_for(settled.wait(), CONNECT_TIMEOUT)
        if not opened:
            await worker.queue_frame(EndFrame())
            return
        async for pcm in real_time(clip.frames(), FRAME_SECONDS):
            await worker.queue_frame(audio(pcm))
        silence = clip.silence(FRAME_SECONDS)
        waited = 0.0
        while not collector.of_kind(TranscriptionFrame) and waited < FINAL_TIMEOUT:
            await worker.queue_frame(audio(silence))
            await collector.wait_for(TranscriptionFrame, FRAME_SECONDS)
            waited += FRAME_SECONDS
        await worker.queue_frame(EndFrame())

    run = await run_pipeline(
        stt,
        feed,
        collect=(TranscriptionFrame, InterimTranscriptionFrame),
        params=PipelineParams(audio_in_sample_rate=clip.sample_rate),
    )
    for frame in run.collector.frames:
        emit("transcription", kind=type(frame).__name__, text=frame.text, result=frame.result)
    emit("done", errors=len(run.errors))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        fail("usage: pipecat_stt_driver.py CLIP.wav [SETTINGS_JSON]")
    asyncio.run(main(Clip.read(Path(sys.argv[1])), json.loads(sys.argv[2]) if len(sys.argv) == 3 else {}))
