// Federated training across runtimes: a real `kiln serve`, four Node processes and a Chromium
// page (WebGPU, asserted) running the npm package's `joinFederation`, and a native `kiln
// federate join`, each holding two or three digit classes that never leave it. A Node client is
// killed (-9) after its first update and restarted, and the page is reloaded: both come back as
// the same participant. The final model against centralised training of the same model for the
// same total epochs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { readFileSync, writeFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  repo,
  kiln,
  kilnBin,
  tempDir,
  launchChromium,
  startServer,
  stopServer,
  killServers,
  installPackage,
  packageEntryUrl,
} from "./helpers.mjs";
import { api } from "./server-api.mjs";

const work = tempDir("kiln-federation-");
const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
// 40 rounds of one local epoch (SGD): measured natively with this split, 0.955 against 0.975
// centralised (2026-12-07).
const ROUNDS = 40;
const CONFIG = {
  name: "fed-js",
  seed: 7,
  model: { hidden: [64] },
  training: {
    num_passes: 1,
    batch_size: 32,
    weight_optimization: { optimization_method: "sgd", learning_rate: 0.05 },
  },
  data: { normalize: false, split: [0.9, 0.1, 0.0] },
};
let pages;
let browser;
let pageBase;

before(async () => {
  pages = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    try {
      const body = await readFile(path === "/page.html" ? join(work, "page.html") : join(repo, path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => pages.listen(0, "127.0.0.1", resolve));
  pageBase = `http://127.0.0.1:${pages.address().port}`;
  writeFileSync(
    join(work, "page.html"),
    "<!doctype html><title>federated client</title><script type=module>import * as k from '/pkg/kiln.js'; window.kilnModule = k;</script>",
  );
  browser = await launchChromium();
  await installPackage();
});

after(async () => {
  killServers();
  await browser?.close();
  pages?.close();
});

/** The digits as CSV rows by class: every 5th row of a class held out for testing. */
function digitsByClass() {
  const rows = gunzipSync(readFileSync(join(repo, "crate/data/digits.csv.gz")))
    .toString("utf8")
    .trim()
    .split("\n");
  const train = Array.from({ length: 10 }, () => []);
  const test = [];
  const seen = new Array(10).fill(0);
  for (const row of rows) {
    const label = Number(row.slice(row.lastIndexOf(",") + 1));
    seen[label] += 1;
    (seen[label] % 5 === 0 ? test : train[label]).push(row);
  }
  return { train, test };
}

/** Each client's classes; a class two clients share is dealt out between them, row by row. */
const CLIENT_CLASSES = [
  [0, 1, 2],
  [3, 4],
  [5, 6],
  [7, 8, 9],
  [1, 5, 9],
  [2, 6],
];

function clientCsvs(train) {
  const holders = new Map();
  CLIENT_CLASSES.forEach((classes, client) => {
    for (const c of classes) holders.set(c, [...(holders.get(c) ?? []), client]);
  });
  const rows = CLIENT_CLASSES.map(() => []);
  train.forEach((classRows, c) => {
    const owners = holders.get(c);
    classRows.forEach((row, i) => rows[owners[i % owners.length]].push(row));
  });
  return rows.map((r) => `${r.join("\n")}\n`);
}

/** A Node client process; resolves its JSON lines as they come (`lines`) and when it exits (`exited`). */
function nodeClient(server, federation, token, csvFile, stateFile) {
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dirname, "federation-client.mjs"),
      packageEntryUrl(),
      server.url,
      federation,
      token,
      csvFile,
      stateFile,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const client = { child, lines: [], stderr: "", listeners: [] };
  let buffer = "";
  child.stdout.on("data", (d) => {
    buffer += d;
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 1);
      client.lines.push(line);
      for (const listener of client.listeners) listener(line);
    }
  });
  child.stderr.on("data", (d) => {
    client.stderr += d;
  });
  client.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  client.next = (type) =>
    new Promise((resolve) => {
      const found = client.lines.find((l) => l.type === type);
      if (found) resolve(found);
      else client.listeners.push((l) => l.type === type && resolve(l));
    });
  return client;
}

/** Accuracy of a `.kiln` file on a CSV, through `kiln eval`. */
function accuracy(modelFile, csvFile) {
  return JSON.parse(kiln(["eval", "--model", modelFile, "--data", csvFile])).metrics.accuracy;
}

test("4 Node processes, a Chromium page on WebGPU and a native client train one model; restarts and a reload rejoin", {
  timeout: 600_000,
}, async () => {
  const { train, test: testRows } = digitsByClass();
  const csvs = clientCsvs(train);
  const files = csvs.map((csv, i) => {
    const file = join(work, `client-${i}.csv`);
    writeFileSync(file, csv);
    return file;
  });
  const testCsv = join(work, "test.csv");
  writeFileSync(testCsv, `${testRows.join("\n")}\n`);
  const tokenFile = join(work, "tokens");
  writeFileSync(tokenFile, "admin-secret\n");
  const server = await startServer(["--token-file", tokenFile, "--allow-origin", pageBase]);
  const admin = "admin-secret";
  const created = await api(server, "/v1/federations", {
    method: "POST",
    token: admin,
    body: { config: CONFIG, rounds: ROUNDS, clientsPerRound: 6, inputShape: [64], numOutputs: 10 },
  });
  assert.equal(created.status, 202, created.text);
  const fed = created.json.id;
  const invite = await api(server, `/v1/federations/${fed}/invites`, { method: "POST", token: admin, body: {} });
  assert.equal(invite.status, 201, invite.text);
  const joinToken = invite.json.token;

  // Four Node processes (client 0 is killed after its first update and restarted).
  const states = files.map((_, i) => join(work, `client-${i}.state.json`));
  const nodes = [0, 1, 2, 3].map((i) => nodeClient(server, fed, joinToken, files[i], states[i]));
  // The native client.
  const joinTokenFile = join(work, "join-token");
  writeFileSync(joinTokenFile, `${joinToken}\n`);
  const native = spawn(
    kilnBin,
    ["federate", "join", server.url, "--federation", fed, "--data", files[5], "--token-file", joinTokenFile],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let nativeErr = "";
  native.stderr.on("data", (d) => {
    nativeErr += d;
  });
  const nativeExit = new Promise((resolve) => native.on("exit", (code) => resolve(code)));

  // The page: joins on WebGPU, is reloaded after its first update, joins again.
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  const openPage = async () => {
    await page.goto(`${pageBase}/page.html`);
    await page.waitForFunction(() => window.kilnModule !== undefined, null, { timeout: 60_000 });
  };
  const joinInPage = (waitFor) =>
    page.evaluate(
      async ({ url, federation, token, csv, waitFor }) => {
        const kiln = await window.kilnModule.Kiln.create({ backend: "webgpu" });
        const fed = await kiln.joinFederation(url, { federation, token, data: { csv }, pollMs: 100 });
        const out = { participant: fed.participant, rejoined: fed.rejoined, backend: kiln.backend.kind };
        if (waitFor === "update") {
          for await (const event of fed.events()) if (event.type === "updateSent") break;
          return out;
        }
        const rounds = [];
        fed.onRound((r) => rounds.push(r));
        const result = await fed.waitForCompletion();
        const stored = (await kiln.listModels()).some((m) => m.modelId === result.modelId);
        return { ...out, result, rounds, stored, status: fed.status() };
      },
      { url: server.url, federation: fed, token: joinToken, csv: csvs[4], waitFor },
    );
  await openPage();
  const firstVisit = await joinInPage("update");
  assert.equal(firstVisit.backend, "webgpu", "the page trained on WebGPU");
  assert.equal(firstVisit.rejoined, false);

  const firstJoined = await nodes[0].next("joined");
  const firstNode = await nodes[0].next("updateSent");
  assert.ok(firstNode.examples > 0, JSON.stringify(firstNode));
  nodes[0].child.kill("SIGKILL");
  await nodes[0].exited;
  const restarted = nodeClient(server, fed, joinToken, files[0], states[0]);
  nodes[0] = restarted;

  await page.reload();
  await page.waitForFunction(() => window.kilnModule !== undefined, null, { timeout: 60_000 });
  const secondVisit = await joinInPage("completion");

  const rejoinedNode = await restarted.next("joined");
  assert.equal(rejoinedNode.participant, firstJoined.participant);
  assert.equal(rejoinedNode.rejoined, true, "the restarted Node client came back as the same participant");
  assert.equal(secondVisit.rejoined, true, "the reloaded page came back as the same participant");
  assert.equal(secondVisit.participant, firstVisit.participant);
  assert.equal(secondVisit.backend, "webgpu");
  assert.equal(secondVisit.status, "completed");
  assert.ok(secondVisit.stored, "the final model is in the page's IndexedDB store");
  assert.ok(
    secondVisit.rounds.length > 0 && secondVisit.rounds.every((r) => r.participated),
    JSON.stringify(secondVisit.rounds),
  );
  assert.deepEqual(pageErrors, []);

  for (const client of nodes) {
    const { code } = await client.exited;
    const done = client.lines.find((l) => l.type === "done");
    assert.equal(code, 0, client.stderr + JSON.stringify(client.lines));
    assert.equal(done.status, "completed");
    assert.equal(done.modelId, secondVisit.result.modelId);
    assert.equal(done.backend, "cpu");
  }
  assert.equal(await nativeExit, 0, nativeErr);

  const view = await api(server, `/v1/federations/${fed}`, { token: admin });
  assert.equal(view.json.status, "completed", view.text);
  assert.equal(view.json.history.length, ROUNDS);
  for (const round of view.json.history) assert.equal(round.participants, 6, JSON.stringify(round));
  const modelId = view.json.trainedModel.modelId;
  assert.equal(secondVisit.result.modelId, modelId, "the page stored the federation's final model");
  const model = await fetch(`${server.url}/v1/models/${modelId}`, { headers: { authorization: `Bearer ${admin}` } });
  assert.equal(model.status, 200);
  const modelFile = join(work, "federated.kiln");
  writeFileSync(modelFile, new Uint8Array(await model.arrayBuffer()));
  const federated = accuracy(modelFile, testCsv);

  // Centralised: the same model on all the clients' data for the same total epochs.
  const allCsv = join(work, "all.csv");
  writeFileSync(allCsv, csvs.join(""));
  const central = { ...CONFIG, name: "central", training: { ...CONFIG.training, num_passes: ROUNDS } };
  central.data = { ...CONFIG.data, source: "csv", path: allCsv };
  writeFileSync(join(work, "central.json"), JSON.stringify(central));
  kiln(["--store", join(work, "store"), "train", join(work, "central.json"), "--out", join(work, "central")]);
  const centralised = accuracy(join(work, "central", "best_model.kiln"), testCsv);
  console.log(`federated ${federated.toFixed(4)}, centralised ${centralised.toFixed(4)}`);
  assert.ok(federated >= centralised - 0.03, `federated ${federated} vs centralised ${centralised}`);
  await context.close();
  assert.equal((await stopServer(server)).code, 0);
});

test("joinFederation's errors: bad options, a refused token, data that does not fit, leave(), an unreachable server", {
  timeout: 120_000,
}, async () => {
  const { Kiln } = await installPackage();
  const tokenFile = join(work, "tokens-errors");
  writeFileSync(tokenFile, "admin-errors\n");
  const server = await startServer(["--token-file", tokenFile]);
  const admin = "admin-errors";
  const created = await api(server, "/v1/federations", {
    method: "POST",
    token: admin,
    body: { config: CONFIG, rounds: 3, clientsPerRound: 2, inputShape: [64], numOutputs: 10 },
  });
  assert.equal(created.status, 202, created.text);
  const federation = created.json.id;
  const kiln = await Kiln.create({ backend: "cpu" });
  const csv = `${digitsByClass().train[3].slice(0, 40).join("\n")}\n`;

  await assert.rejects(kiln.joinFederation(server.url, { federation: "fed-1", data: { csv } }), /federation must be/);
  await assert.rejects(kiln.joinFederation(server.url, { federation }), /data must be/);
  await assert.rejects(kiln.joinFederation("not a url", { federation, data: { csv } }), /is not a URL/);
  await assert.rejects(
    kiln.joinFederation(server.url, { federation, data: { csv }, token: "wrong" }),
    (e) => e.httpStatus === 401,
  );

  // Three features where the model takes 64: this client stops with the reason.
  const misfit = await kiln.joinFederation(server.url, {
    federation,
    token: admin,
    data: { csv: "1,2,3,0\n4,5,6,1\n" },
  });
  await assert.rejects(misfit.waitForCompletion(), (e) => e.status === "failed" && /does not fit/.test(e.message));
  assert.equal(misfit.status(), "failed");

  // leave(): the client stops, its Promise rejects with status "left".
  const leaving = await kiln.joinFederation(server.url, { federation, token: admin, data: { csv }, pollMs: 50 });
  const sent = (async () => {
    for await (const event of leaving.events()) if (event.type === "updateSent") return event;
  })();
  assert.ok((await sent).examples > 0);
  leaving.leave();
  await assert.rejects(leaving.waitForCompletion(), (e) => e.status === "left");
  assert.equal(leaving.status(), "left");

  // The server goes away: requests are retried for retryForSecs, then the client gives up.
  const stranded = await kiln.joinFederation(server.url, {
    federation,
    token: admin,
    data: { csv },
    pollMs: 50,
    retryForSecs: 1,
  });
  await stopServer(server, "SIGKILL");
  await assert.rejects(stranded.waitForCompletion(), (e) => e.status === "failed" && /did not answer/.test(e.message));
});

test("secure aggregation from the package: Node clients and a native client; the model is plain FedAvg's", {
  timeout: 300_000,
}, async () => {
  const { Kiln } = await installPackage();
  const { train } = digitsByClass();
  // Three clients with a third of every class each.
  const thirds = [0, 1, 2].map((k) => `${train.flatMap((rows) => rows.filter((_, i) => i % 3 === k)).join("\n")}\n`);
  const nativeCsv = join(work, "secure-native.csv");
  writeFileSync(nativeCsv, thirds[2]);
  const run = async (secure) => {
    const server = await startServer();
    const body = {
      config: CONFIG,
      rounds: 2,
      clientsPerRound: 3,
      inputShape: [64],
      numOutputs: 10,
      aggregation: { clipNorm: 10 },
    };
    if (secure) Object.assign(body, { secureAggregation: true, securePhaseSecs: 10 });
    const created = await api(server, "/v1/federations", { method: "POST", body });
    assert.equal(created.status, 202, created.text);
    const federation = created.json.id;
    const kiln = await Kiln.create({ backend: "cpu" });
    const events = [];
    const clients = await Promise.all(
      [0, 1].map((i) => kiln.joinFederation(server.url, { federation, data: { csv: thirds[i] }, pollMs: 50 })),
    );
    (async () => {
      for await (const e of clients[0].events()) events.push(e);
    })();
    const native = spawn(kilnBin, ["federate", "join", server.url, "--federation", federation, "--data", nativeCsv], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let nativeErr = "";
    native.stderr.on("data", (d) => {
      nativeErr += d;
    });
    const results = await Promise.all(clients.map((c) => c.waitForCompletion()));
    assert.equal(await new Promise((resolve) => native.on("exit", resolve)), 0, nativeErr);
    const view = await api(server, `/v1/federations/${federation}`);
    assert.equal(view.json.status, "completed", view.text);
    assert.equal(view.json.secureAggregation, secure);
    for (const round of view.json.history) assert.equal(round.participants, 3, JSON.stringify(round));
    const model = await clients[0].model();
    const probe = new Float32Array(64 * 5).map((_, i) => (i * 7) % 17);
    const probs = await model.predict(probe, [5, 64]);
    await stopServer(server);
    return { probs, events, results };
  };
  const secure = await run(true);
  const plain = await run(false);
  const sent = secure.events.filter((e) => e.type === "updateSent");
  assert.equal(sent.length, 2, JSON.stringify(secure.events));
  assert.ok(sent.every((e) => e.secure === true));
  assert.equal(secure.results[0].status, "completed");
  for (let i = 0; i < plain.probs.length; i++) {
    assert.ok(Math.abs(secure.probs[i] - plain.probs[i]) < 1e-3, `${i}: ${secure.probs[i]} vs ${plain.probs[i]}`);
  }
});

test("the dashboard's federation page: rounds, participants, validation curve, bytes in and out", {
  timeout: 300_000,
}, async () => {
  const { train, test: testRows } = digitsByClass();
  const tokenFile = join(work, "dash-fed-tokens");
  writeFileSync(tokenFile, "dash-fed\n");
  const server = await startServer(["--token-file", tokenFile]);
  const token = "dash-fed";
  const upload = await api(server, "/v1/datasets?header=false", {
    method: "POST",
    token,
    body: `${testRows.join("\n")}\n`,
    type: "text/csv",
  });
  assert.equal(upload.status, 201, upload.text);
  const created = await api(server, "/v1/federations", {
    method: "POST",
    token,
    body: {
      config: CONFIG,
      rounds: 3,
      clientsPerRound: 2,
      inputShape: [64],
      numOutputs: 10,
      validationDataset: upload.json.id,
    },
  });
  assert.equal(created.status, 202, created.text);
  const fed = created.json.id;
  const tokenCopy = join(work, "dash-fed-token");
  writeFileSync(tokenCopy, `${token}\n`);
  const clients = [0, 1].map((k) => {
    const file = join(work, `dash-client-${k}.csv`);
    writeFileSync(file, `${train.flatMap((rows) => rows.filter((_, i) => i % 2 === k)).join("\n")}\n`);
    const child = spawn(
      kilnBin,
      ["federate", "join", server.url, "--federation", fed, "--data", file, "--token-file", tokenCopy],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    return new Promise((resolve) => child.on("exit", resolve));
  });
  assert.deepEqual(await Promise.all(clients), [0, 0]);

  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.url}/`);
  await page.waitForSelector("#token-dialog[open]");
  await page.fill("#token", token);
  await page.click("#token-ok");
  const row = page.locator(`tr[data-federation="${fed}"]`);
  await row.waitFor();
  // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText (rendered text)
  assert.match(await row.innerText(), /completed.*3\/3.*fedavg/is);
  await page.click(`tr[data-federation="${fed}"] a`);
  await page.waitForSelector('#fed-rounds tbody tr[data-round="2"]');
  await page.waitForFunction(() => document.querySelector("#fed-status").textContent === "completed");
  const shown = await page.evaluate(() => ({
    rounds: [...document.querySelectorAll("#fed-rounds tbody tr")].map((tr) =>
      [...tr.cells].map((c) => c.textContent.trim()),
    ),
    accuracyPoints: Number(document.querySelector("#fed-accuracy").dataset.points),
    participantPoints: Number(document.querySelector("#fed-participants").dataset.points),
    text: document.querySelector("#fed-text").textContent,
    bar: document.querySelector("#fed-bar").getAttribute("aria-valuenow"),
  }));
  assert.equal(shown.rounds.length, 3, JSON.stringify(shown));
  for (const [round, participants, , bytesIn, bytesOut, metrics] of shown.rounds) {
    assert.equal(participants, "2", round);
    assert.match(bytesIn, /^[1-9][\d,]* KB$/);
    assert.match(bytesOut, /^[1-9][\d,]* KB$/);
    assert.match(metrics, /val_accuracy/);
  }
  // Global (val_*) and clients' accuracy, each round.
  assert.equal(shown.accuracyPoints, 6, JSON.stringify(shown));
  assert.equal(shown.participantPoints, 3);
  assert.equal(shown.bar, "100");
  assert.match(shown.text, /round 3\/3/);
  assert.deepEqual(errors, []);
  await context.close();
  assert.equal((await stopServer(server)).code, 0);
});
