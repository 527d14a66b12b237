// InvokeEndpointWithBidirectionalStream as the AWS SDK for JavaScript v3 sends it, from the SDK's own
// pinned packages: the request the SDK's REST-JSON serializer and middleware build, signed by
// @smithy/signature-v4 (over HTTP/2 the SDK signs ":authority", not "host"), its event stream
// serialized by the SDK's EventStreamMarshaller and signed event by event by
// @aws-sdk/eventstream-handler-node's payload handler (EventStreamPayloadHandler), sent by @smithy/node-http-handler's
// NodeHttp2Handler with disableConcurrentStreams (as the SageMaker runtime client configures it).
// The client package itself (@aws-sdk/client-sagemaker-runtime-http2) is not on the registry
// reachable here; the steps it adds on top of these packages are the few lines below.
//
//   node bidi_client.js < script.json
//
// script: {endpoint, region, endpointName, invocationPath?, queryString?, targetVariant?,
//          parts: [{data (base64) | file (path), chunkSize?, dataType?, completionState?,
//                   afterResponses? (send only once this many response parts have arrived)}],
//          endInputAfter: number of response parts to wait for before ending the input,
//                         or null to end it only once the response has ended}
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, as the SDK's default chain reads
// them; the local CA from NODE_EXTRA_CA_CERTS. Prints one JSON object: the exact request sent, the
// response, every event received and a timeline with times (including when the handler closed its
// session). bench/bench_router.py times round trips with it.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const http2 = require("node:http2");
const { Sha256 } = require("@aws-crypto/sha256-js");
const { eventStreamPayloadHandlerProvider } = require("@aws-sdk/eventstream-handler-node");
const { EventStreamMarshaller } = require("@smithy/eventstream-serde-node");
const { NodeHttp2Handler } = require("@smithy/node-http-handler");
const { HttpRequest } = require("@smithy/protocol-http");
const { SignatureV4 } = require("@smithy/signature-v4");
const { fromUtf8, toUtf8 } = require("@smithy/util-utf8");

const SDK_VERSION = require("@aws-sdk/eventstream-handler-node/package.json").version;
const USER_AGENT = `aws-sdk-js/${SDK_VERSION} ua/2.1 os/${process.platform} lang/js md/nodejs#${process.versions.node} api/sagemaker-runtime-http2#${SDK_VERSION}`;

const INPUT_END_WAIT_MS = 5000;
const timeline = [];
const times = []; // ms (performance.now()) of each timeline entry, for the benchmark
const mark = (what) => {
  timeline.push(what);
  times.push(performance.now());
};

// Watch (never change) what NodeHttp2Handler does with its session: it closes it gracefully (GOAWAY)
// right after an event stream's response headers and keeps using the open stream.
const connect = http2.connect;
http2.connect = (...args) => {
  const session = connect(...args);
  const close = session.close.bind(session);
  session.close = (...closeArgs) => {
    mark("session.close (GOAWAY)");
    return close(...closeArgs);
  };
  return session;
};

async function readScript() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// Resolves waits for "n response parts have arrived"; all of them once the response has ended.
class Arrivals {
  count = 0;
  ended = false;
  waiters = [];
  wait(n) {
    if (n == null) n = Infinity;
    if (this.ended || this.count >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
  arrived() {
    this.count += 1;
    this.release();
  }
  end() {
    this.ended = true;
    this.release();
  }
  release() {
    const ready = this.waiters.filter(({ n }) => this.ended || this.count >= n);
    this.waiters = this.waiters.filter((waiter) => !ready.includes(waiter));
    for (const { resolve } of ready) resolve();
  }
}

// The generated client's serializer for RequestStreamEvent: PayloadPart's Bytes is the event
// payload, DataType and CompletionState (and P) are string event headers.
function serializeEvent(event) {
  const part = event.PayloadPart;
  const headers = {
    ":event-type": { type: "string", value: "PayloadPart" },
    ":message-type": { type: "string", value: "event" },
    ":content-type": { type: "string", value: "application/octet-stream" },
  };
  for (const name of ["DataType", "CompletionState", "P"]) {
    if (part[name] != null) headers[name] = { type: "string", value: part[name] };
  }
  return { headers, body: part.Bytes };
}

// The generated client's deserializer for ResponseStreamEvent.
async function deserializeEvent(event) {
  const [name] = Object.keys(event);
  const message = event[name];
  const header = (key) => message.headers[key]?.value;
  if (name === "PayloadPart") {
    return {
      PayloadPart: { Bytes: message.body, DataType: header("DataType"), CompletionState: header("CompletionState") },
    };
  }
  if (name === "ModelStreamError" || name === "InternalStreamFailure") {
    const fields = JSON.parse(toUtf8(message.body) || "{}");
    const error = Object.assign(new Error(fields.Message ?? "Unknown"), fields);
    error.name = name;
    return { [name]: error };
  }
  return { $unknown: event };
}

function* partsOf(spec) {
  const data = spec.file ? fs.readFileSync(spec.file) : Buffer.from(spec.data ?? "", "base64");
  const size = spec.chunkSize ?? (data.length || 1);
  for (let offset = 0; offset < data.length || offset === 0; offset += size) {
    yield {
      PayloadPart: {
        Bytes: new Uint8Array(data.subarray(offset, offset + size)),
        DataType: spec.dataType ?? undefined,
        CompletionState: spec.completionState ?? undefined,
      },
    };
    if (data.length === 0) break;
  }
}

async function main() {
  const script = await readScript();
  const endpoint = new URL(script.endpoint);
  const credentials = async () => ({
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    sessionToken: process.env.AWS_SESSION_TOKEN,
  });
  const signer = new SignatureV4({ credentials, region: script.region, service: "sagemaker", sha256: Sha256 });
  const marshaller = new EventStreamMarshaller({ utf8Encoder: toUtf8, utf8Decoder: fromUtf8 });
  const handler = new NodeHttp2Handler({ disableConcurrentStreams: true });
  const arrivals = new Arrivals();
  let inputEnded;
  const inputDone = new Promise((resolve) => (inputEnded = resolve));

  async function* input() {
    for (const spec of script.parts) {
      if (spec.afterResponses) await arrivals.wait(spec.afterResponses);
      for (const event of partsOf(spec)) {
        mark("part sent");
        yield event;
      }
    }
    await arrivals.wait(script.endInputAfter);
    mark("input ended");
    inputEnded();
  }

  const headers = {
    "content-type": "application/vnd.amazon.eventstream",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-EVENTS", // @aws-sdk/middleware-eventstream
    "x-amz-user-agent": USER_AGENT,
    "user-agent": USER_AGENT,
    "amz-sdk-invocation-id": crypto.randomUUID(),
    "amz-sdk-request": "attempt=1; max=3",
    ":authority": endpoint.host, // @aws-sdk/middleware-host-header, for an "h2" request handler
  };
  if (script.targetVariant) headers["x-amzn-sagemaker-target-variant"] = script.targetVariant;
  if (script.invocationPath) headers["x-amzn-sagemaker-model-invocation-path"] = script.invocationPath;
  if (script.queryString) headers["x-amzn-sagemaker-model-query-string"] = script.queryString;
  const unsigned = new HttpRequest({
    protocol: endpoint.protocol,
    hostname: endpoint.hostname,
    port: Number(endpoint.port),
    method: "POST",
    path: `/endpoints/${encodeURIComponent(script.endpointName)}/invocations-bidirectional-stream`,
    query: {},
    headers,
    body: marshaller.serialize(input(), serializeEvent),
  });
  const request = await signer.sign(unsigned);
  const sent = { method: request.method, path: request.path, headers: { ...request.headers } };

  const payloadHandler = eventStreamPayloadHandlerProvider({
    messageSigner: async () => signer,
    utf8Encoder: toUtf8,
    utf8Decoder: fromUtf8,
    credentials,
  });
  const result = { request: sent, timeline, times, events: [] };
  try {
    const { response } = await payloadHandler.handle((args) => handler.handle(args.request), { request, input: {} });
    mark("response headers");
    result.status = response.statusCode;
    result.responseHeaders = response.headers;
    if (response.statusCode !== 200) {
      const body = [];
      for await (const chunk of response.body) body.push(chunk);
      result.error = {
        type: response.headers["x-amzn-errortype"],
        body: JSON.parse(Buffer.concat(body).toString("utf8") || "{}"),
      };
      arrivals.end();
    } else {
      try {
        for await (const event of marshaller.deserialize(response.body, deserializeEvent)) {
          const part = event.PayloadPart;
          if (!part) continue;
          mark("part received");
          result.events.push({
            data: Buffer.from(part.Bytes).toString("base64"),
            dataType: part.DataType ?? null,
            completionState: part.CompletionState ?? null,
          });
          arrivals.arrived();
        }
        mark("response ended");
      } catch (error) {
        mark(`stream error ${error.name}`);
        result.streamError = { name: error.name, message: error.message, errorCode: error.ErrorCode ?? null };
      } finally {
        arrivals.end();
      }
    }
    // The SDK ends the input itself (signed empty frame, END_STREAM); give it a bounded moment.
    await Promise.race([inputDone, new Promise((resolve) => setTimeout(resolve, INPUT_END_WAIT_MS).unref())]);
  } catch (error) {
    result.failure = `${error.name}: ${error.message}`;
  } finally {
    handler.destroy();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ failure: `${error.name}: ${error.message}`, timeline }) + "\n");
  process.exitCode = 1;
});
