// Talking to a `kiln serve` from tests: JSON requests, waiting for a job's end, reading its
// Server-Sent Events.
import assert from "node:assert/strict";

/** fetch + JSON with an optional token. */
export async function api(server, path, { method = "GET", body, token, type, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    if (body instanceof Uint8Array || typeof body === "string") {
      init.body = body;
      init.headers["content-type"] = type ?? "application/octet-stream";
    } else {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
  }
  const response = await fetch(server.url + path, init);
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, headers: response.headers, json, text };
}

export async function waitFor(server, id, { token, timeout = 120000 } = {}) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const { json } = await api(server, `/v1/jobs/${id}`, { token });
    if (["completed", "failed", "cancelled"].includes(json.status)) return json;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not end in ${timeout} ms`);
}

/** Reads an SSE stream with fetch until it ends; returns [{id, event, data}]. */
export async function readEvents(server, id, { lastEventId, token, until } = {}) {
  const headers = {};
  if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
  if (token) headers.authorization = `Bearer ${token}`;
  const controller = new AbortController();
  const response = await fetch(`${server.url}/v1/jobs/${id}/events`, { headers, signal: controller.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /text\/event-stream/);
  const events = [];
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = {};
        for (const line of block.split("\n")) {
          const [k, ...v] = line.split(":");
          if (k && v.length) event[k.trim()] = v.join(":").trim();
        }
        if (event.data !== undefined) {
          events.push({ id: Number(event.id), event: event.event, data: JSON.parse(event.data) });
          if (until?.(events.at(-1))) {
            controller.abort();
            return events;
          }
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  }
  return events;
}

/** Two separable classes in 4 features (CSV with a header, label last). */
export function twoClassCsv(rows = 240) {
  const lines = ["a,b,c,d,label"];
  for (let i = 0; i < rows; i++) {
    const cls = i % 2;
    const f = [0, 1, 2, 3].map((j) => ((cls ? 1 : -1) * (1 + ((i * 7 + j * 3) % 5) / 5)).toFixed(3));
    lines.push(`${f.join(",")},${cls}`);
  }
  return lines.join("\n") + "\n";
}

/** A config whose runs are bit-for-bit repeatable on CPU (resume tests compare weights). */
export const DETERMINISTIC = {
  deterministic: true,
  seed: 3,
  model: { preset: "mlp", hidden: [64], dropout: 0.2 },
  training: { num_passes: 12, batch_size: 16 },
  checkpoint: { every_epochs: 1, save_top_k: 2 },
};

/** A burnpack file's tensor data (after its header, whose random parameter ids differ per run). */
export function burnpackTensorData(bytes) {
  assert.equal(bytes.subarray(0, 4).toString("latin1"), "NRUB");
  return bytes.subarray(10 + bytes.readUInt32LE(6));
}
