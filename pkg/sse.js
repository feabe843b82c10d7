// Reading a `text/event-stream` body (what `kiln serve` sends for a job's events) with fetch,
// so a token can go in a header. Used by the remote mode and by the server's dashboard.

/** Parses a text/event-stream body into `{ id, event, data }` objects. */
export async function* serverEvents(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const event = { data: [] };
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue; // heartbeat
        const colon = line.indexOf(":");
        const key = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (key === "data") event.data.push(value);
        else if (key === "id") event.id = Number(value);
        else if (key === "event") event.event = value;
      }
      if (event.data.length > 0) yield { id: event.id, event: event.event, data: JSON.parse(event.data.join("\n")) };
    }
  }
}
