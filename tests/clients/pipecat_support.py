"""Pipecat pieces every Pipecat driver shares (STT here; the v1/speak TTS driver can reuse them).

Runs inside .venv-pipecat. ``redirect`` is the one change made to Pipecat: its SageMaker services build
a ``SageMakerBidiClient`` whose ``bidi_endpoint`` is the hard-coded public runtime address; the
subclass points it at the local endpoint and reports the request the service makes. ``run_pipeline``
runs a minimal pipeline (service, then a collector) with Pipecat's own worker and runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from driver_support import emit, runtime_uri
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

PIPELINE_TIMEOUT = 60.0  # seconds a whole driver run may take before it is cancelled


def redirect(service_module: ModuleType) -> None:
    """Make ``service_module`` (e.g. ``pipecat.services.deepgram.sagemaker.stt``) use the local endpoint."""
    public_client = service_module.SageMakerBidiClient

    class LocalBidiClient(public_client):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            emit(
                "request",
                replaced=self.bidi_endpoint,
                path=self.model_invocation_path,
                query=self.model_query_string,
            )
            self.bidi_endpoint = runtime_uri()

    service_module.SageMakerBidiClient = LocalBidiClient


class Collector(FrameProcessor):
    """The pipeline's last processor: keeps the frames of the given kinds and passes everything on."""

    def __init__(self, kinds: tuple[type[Frame], ...]) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self._kinds = kinds
        self._arrived = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, self._kinds):
            self.frames.append(frame)
            self._arrived.set()
        await self.push_frame(frame, direction)

    def of_kind(self, kind: type[Frame]) -> list[Frame]:
        return [frame for frame in self.frames if isinstance(frame, kind)]

    async def wait_for(self, kind: type[Frame], within: float) -> bool:
        """True once a frame of ``kind`` has arrived, False if none has within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while not self.of_kind(kind):
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False
        return True


@dataclass
class PipelineRun:
    collector: Collector
    errors: list[ErrorFrame] = field(default_factory=list)


async def run_pipeline(
    service: FrameProcessor,
    feed: Callable[[PipelineWorker, Collector], Awaitable[None]],
    *,
    collect: tuple[type[Frame], ...],
    params: PipelineParams,
) -> PipelineRun:
    """Run ``Pipeline([service, collector])`` while ``feed`` queues frames (it ends with an EndFrame).

    Every ``ErrorFrame`` any processor reports reaches the worker's ``on_pipeline_error`` and is kept.
    """
    run = PipelineRun(Collector(collect))
    worker = PipelineWorker(Pipeline([service, run.collector]), params=params)

    @worker.event_handler("on_pipeline_error")
    async def on_pipeline_error(_worker: PipelineWorker, frame: ErrorFrame) -> None:
        run.errors.append(frame)
        emit("error_frame", error=frame.error, fatal=frame.fatal)

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(asyncio.gather(runner.run(), feed(worker, run.collector)), PIPELINE_TIMEOUT)
    return run
