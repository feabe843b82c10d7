// A federation client in its own Node process, as an edge box would run one: the installed
// package (its entry URL in argv[2]) joins the federation and trains on its own CSV file. One
// JSON line per event on stdout: `joined`, `updateSent`, then `completed` or `failed`.
import { readFileSync } from "node:fs";

const [entry, server, federation, token, csvFile, stateFile] = process.argv.slice(2);
const { Kiln } = await import(entry);
const kiln = await Kiln.create({ backend: "cpu" });
const fed = await kiln.joinFederation(server, {
  federation,
  token,
  data: { csv: readFileSync(csvFile, "utf8") },
  stateFile,
  pollMs: 100,
});
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
(async () => {
  for await (const event of fed.events()) {
    if (event.type === "updateSent" || event.type === "warning") say(event);
  }
})();
say({ type: "joined", participant: fed.participant, rejoined: fed.rejoined });
try {
  const result = await fed.waitForCompletion();
  const model = await fed.model();
  say({ type: "done", ...result, backend: kiln.backend.kind, modelIdLoaded: model.modelId });
} catch (error) {
  say({ type: "failed", message: error.message });
  process.exitCode = 1;
}
