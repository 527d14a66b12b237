"""``bidistream endpoint``: run the local SageMaker runtime endpoint until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from bidistream.endpoint.router import RouterSettings
from bidistream.endpoint.server import LocalEndpoint
from bidistream.endpoint.sigv4 import Credentials
from bidistream.endpoint.tls import generate_certificates, server_ssl_context

logger = logging.getLogger(__name__)


async def serve(
    *,
    host: str,
    port: int,
    model_url: str,
    cert_dir: Path,
    ping_interval: float,
    max_missed_pongs: int,
) -> None:
    """Generate the CA, listen, print the CA path and a ready line (stdout), serve until signalled."""
    credentials = Credentials.from_environment()
    files = generate_certificates(cert_dir)
    settings = RouterSettings(
        model_url=model_url,
        credentials=credentials,
        ping_interval=ping_interval,
        max_missed_pongs=max_missed_pongs,
    )
    endpoint = LocalEndpoint(settings, server_ssl_context(files), host=host, port=port)
    bound_port = await endpoint.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"CA file: {files.ca_file}", flush=True)
    print(f"ready: https://{host}:{bound_port} -> {model_url}", flush=True)
    try:
        await stop.wait()
    finally:
        logger.info("stopping the local endpoint")
        await endpoint.close()
