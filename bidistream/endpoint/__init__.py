"""A local SageMaker AI runtime endpoint for bidirectional streaming (HTTP/2 + TLS + SigV4 → WebSocket).

Modules: ``tls`` (local CA and certificate), ``sigv4`` (request and event signature checks),
``eventstream`` (event-stream framing glue), ``api`` (the API's validation rules and error shapes),
``container`` (the WebSocket to the model container, frame by frame), ``router`` (one stream:
HTTP/2 ↔ WebSocket), ``server`` (the TLS + HTTP/2 server).
"""
