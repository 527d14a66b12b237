"""Models served by the container. Each module holds one ``Model`` implementation."""
