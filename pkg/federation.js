// `kiln.joinFederation(url, { federation, token, data })`: this page or process takes part in a
// federation run by `kiln serve`. Each round it fetches the global model, trains it on its own
// data with its own backend (WebGPU or CPU wasm, in a worker when the Kiln is one), and sends
// back the trained model. What leaves the device, and nothing else: the participant id, the
// trained model (its weights and the header the global model came with, with the local training
// metrics) and the number of training examples. The data never does.
import { problemError } from "./problem.js";
import { eventsUntil } from "./relayed-job.js";
import { participantIds } from "./participant-ids.js";

/** A federation id as the server hands them out. */
const FEDERATION_ID = /^fed-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** One request's longest wait (a large model's download or upload on a slow link). */
const REQUEST_TIMEOUT_MS = 120_000;
/** Answers that mean "the server is restarting or overloaded": tried again. */
const TRANSIENT = new Set([502, 503, 504]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One federation's calls to the server, retried while it is unreachable (up to `retryForMs`). */
class FederationLink {
  #base;
  #token;
  #retryForMs;
  constructor(base, token, retryForMs) {
    this.#base = base;
    this.#token = token;
    this.#retryForMs = retryForMs;
  }

  /** Resolves with the JSON answer, or the Response when `raw`; `accept` lists non-2xx statuses to return. */
  async call(method, path, { json, body, raw = false, accept = [] } = {}) {
    const headers = {};
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (json !== undefined) headers["content-type"] = "application/json";
    if (body !== undefined) headers["content-type"] = "application/octet-stream";
    const payload = json !== undefined ? JSON.stringify(json) : body;
    let failingSince = null;
    for (let attempt = 0; ; attempt++) {
      let response;
      let failure;
      try {
        response = await fetch(this.#base + path, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
      } catch (e) {
        failure = e?.cause?.message ?? e?.message ?? String(e);
      }
      if (response && !TRANSIENT.has(response.status)) {
        if (!response.ok && !accept.includes(response.status)) throw await problemError(response, `${method} ${path}`);
        return raw || !response.ok ? response : response.json();
      }
      failure ??= `HTTP ${response.status}`;
      failingSince ??= Date.now();
      if (Date.now() - failingSince >= this.#retryForMs) {
        throw new Error(
          `the Kiln server at ${this.#base} did not answer ${method} ${path} for ${Math.round(this.#retryForMs / 1000)} s: ${failure}`,
        );
      }
      await sleep(Math.min(250 * 2 ** attempt, 5000));
    }
  }
}

/** Checks `joinFederation`'s arguments; returns the server's base URL and the options with defaults. */
function checkOptions(url, options) {
  if (typeof url !== "string" && !(url instanceof URL)) {
    throw new TypeError('joinFederation takes the server\'s URL, e.g. "http://127.0.0.1:7878"');
  }
  let base;
  try {
    base = new URL(String(url)).href.replace(/\/+$/, "");
  } catch {
    throw new TypeError(`joinFederation: ${JSON.stringify(String(url))} is not a URL`);
  }
  if (options === null || typeof options !== "object") throw new TypeError("joinFederation takes an options object");
  const { federation, token, data, stateFile, participant, pollMs = 300, retryForSecs = 120 } = options;
  if (typeof federation !== "string" || !FEDERATION_ID.test(federation)) {
    throw new TypeError(`federation must be the id the server gave (fed-<uuid>), got ${JSON.stringify(federation)}`);
  }
  if (token !== undefined && typeof token !== "string") throw new TypeError("token must be a string");
  if (data === null || typeof data !== "object" || (data.csv === undefined && data.features === undefined)) {
    throw new TypeError("data must be this client's samples: { features, labels, shape } or { csv }");
  }
  if (participant !== undefined && typeof participant !== "string") throw new TypeError("participant must be a string");
  for (const [name, value] of [
    ["pollMs", pollMs],
    ["retryForSecs", retryForSecs],
  ]) {
    if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
      throw new TypeError(`${name} must be a positive number, got ${JSON.stringify(value)}`);
    }
  }
  return { base, federation, token, data, stateFile, participant, pollMs, retryForMs: retryForSecs * 1000 };
}

/**
 * A federation this client has joined: it takes part in every round it is given until the
 * federation ends or `leave()` is called.
 */
export class Federation {
  #trainer;
  #link;
  #options;
  #status = "joining";
  #round = 0;
  #rounds;
  #error;
  #listeners = new Set();
  #roundListeners = [];
  #done;
  #settle;
  #left = false;
  #wake = null;
  /** Rounds this client sent an update for: round → `{ examples, metrics }`. */
  #sent = new Map();
  /** `{ threshold, phaseSecs, clipNorm }` when the federation aggregates securely. */
  #secure = null;

  /** @internal Use `kiln.joinFederation`. */
  constructor(trainer, link, options, participant, rounds, rejoined) {
    this.#trainer = trainer;
    this.#link = link;
    this.#options = options;
    this.#rounds = rounds;
    /** The federation's id. */
    this.id = options.federation;
    /** This client's participant id (the same after a reload or restart: it is kept). */
    this.participant = participant;
    /** Whether this device joined before and came back as the same participant. */
    this.rejoined = rejoined;
    this.#done = new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#done.catch(() => {}); // failures surface through waitForCompletion()
  }

  /**
   * @internal Joins (as the participant this device was before, when it kept one) and starts
   * taking part. `trainer` is the Kiln: `_trainRound(bytes, data, onEvent)`, `importModel`,
   * `preloadedModel`.
   */
  static async join(trainer, url, rawOptions) {
    const options = checkOptions(url, rawOptions);
    const link = new FederationLink(options.base, options.token, options.retryForMs);
    const ids = await participantIds({ stateFile: options.stateFile });
    const key = `${options.base} ${options.federation}`;
    const known = options.participant ?? (await ids.get(key));
    const joined = await link.call("POST", `/v1/federations/${options.federation}/join`, {
      json: known ? { participant: known } : {},
    });
    await ids.set(key, joined.participant);
    const rejoined = known === joined.participant;
    const federation = new Federation(trainer, link, options, joined.participant, joined.federation?.rounds, rejoined);
    federation.#secure = joined.secureAggregation ?? null;
    federation.#run().then(
      (result) => federation.#finish("completed", result),
      (error) =>
        federation.#finish(
          federation.#left ? "left" : error?.status === "cancelled" ? "cancelled" : "failed",
          undefined,
          error,
        ),
    );
    return federation;
  }

  /** `"joining" | "waiting" | "training" | "completed" | "failed" | "cancelled" | "left"`. */
  status() {
    return this.#status;
  }
  /** The round the federation is in (0-based), as of this client's last check-in. */
  round() {
    return this.#round;
  }
  /** The federation's number of rounds. */
  get rounds() {
    return this.#rounds;
  }
  /** Why this client stopped, when it failed (or the federation failed or was cancelled). */
  get error() {
    return this.#error?.message;
  }

  /**
   * Calls `callback({ round, participated, examples?, metrics? })` when a round closes: whether
   * this client's update was in it, and if so its example count and local metrics.
   */
  onRound(callback) {
    if (typeof callback !== "function") throw new TypeError("onRound takes a function");
    this.#roundListeners.push(callback);
  }

  /**
   * This client's events until it stops: `roundStarted`, `local` (the local training's
   * engine events), `updateSent`, `updateRefused`, `roundClosed`, `warning`, then `completed`,
   * `failed`, `cancelled` or `left`.
   */
  events() {
    return eventsUntil((listener) => this.#listeners.add(listener), this.#done);
  }

  /**
   * Resolves when the federation completes: `{ status, federation, participant, rounds, result,
   * modelId }` (`modelId`: the final model, also in this Kiln's store). Rejects with an Error
   * (with `status`) if it fails, is cancelled, or this client leaves or cannot go on.
   */
  waitForCompletion() {
    return this.#done;
  }

  /** The latest global model (the final one once completed), loaded to predict locally. */
  async model() {
    const response = await this.#link.call("GET", `/v1/federations/${this.id}/model`, { raw: true });
    return this.#trainer.preloadedModel(new Uint8Array(await response.arrayBuffer()));
  }

  /** Stops taking part: no further update is sent (the server drops this client at the round's timeout). */
  leave() {
    this.#left = true;
    this.#wake?.();
  }

  #emit(event) {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        /* a throwing listener must not stop the client */
      }
    }
  }

  #finish(status, result, error) {
    if (["completed", "failed", "cancelled", "left"].includes(this.#status)) return;
    this.#status = status;
    if (status === "completed") {
      this.#emit({ type: "completed", ...result });
      this.#settle.resolve(result);
      return;
    }
    const failure = error ?? new Error(`federation ${this.id} ended as ${status}`);
    failure.status = status;
    this.#error = failure;
    this.#emit({ type: status, message: failure.message });
    this.#settle.reject(failure);
  }

  /** Waits `pollMs` (or until `leave()`). */
  async #pause() {
    await new Promise((resolve) => {
      this.#wake = resolve;
      setTimeout(resolve, this.#options.pollMs);
    });
    this.#wake = null;
  }

  /** Checks in, trains when given a round, until the federation ends or this client leaves. */
  async #run() {
    const fed = `/v1/federations/${this.id}`;
    let seen = null;
    let sittingOut = null;
    while (!this.#left) {
      const next = await this.#link.call("POST", `${fed}/checkin`, { json: { participant: this.participant } });
      this.#rounds = next.rounds ?? this.#rounds;
      for (let round = seen ?? next.round; round < next.round; round++) this.#roundClosed(round);
      seen = next.round;
      this.#round = next.round;
      if (this.#left) break;
      if (next.action === "train" && sittingOut !== next.round) {
        if (!(await this.#trainRound(next.round))) sittingOut = next.round;
      } else if (next.action === "train" || next.action === "wait") {
        this.#status = "waiting";
        await this.#pause();
      } else if (next.action === "completed") {
        return this.#completed(next);
      } else {
        const error = new Error(`federation ${this.id} is ${next.action}: ${next.error ?? "no reason given"}`);
        throw Object.assign(error, { status: next.action });
      }
    }
    throw new Error(`left federation ${this.id} at round ${this.#round}`);
  }

  /** One round: the global model, local training, the update. False when this client sits it out. */
  async #trainRound(round) {
    const fed = `/v1/federations/${this.id}`;
    this.#status = "training";
    this.#emit({ type: "roundStarted", round });
    const response = await this.#link.call("GET", `${fed}/model?round=${round}`, { raw: true });
    const global = new Uint8Array(await response.arrayBuffer());
    let trained;
    try {
      trained = await this.#trainer._trainRound(global, this.#options.data, (event) =>
        this.#emit({ type: "local", round, event }),
      );
    } catch (error) {
      if (error?.phase === "data") {
        throw new Error(`this client's data does not fit federation ${this.id}'s model: ${error.message}`);
      }
      this.#emit({
        type: "warning",
        round,
        message: `local training failed (${error?.message ?? error}); sitting this round out`,
      });
      return false;
    }
    if (this.#left) return true;
    if (this.#secure) return this.#secureSteps(round, global, trained);
    const { update, examples, metrics } = trained;
    const query = `participant=${encodeURIComponent(this.participant)}&examples=${examples}`;
    const answer = await this.#link.call("POST", `${fed}/rounds/${round}/updates?${query}`, {
      body: update,
      accept: [409],
    });
    if (answer instanceof Response) {
      // The round closed (its timeout) before this update arrived: the next check-in says what's next.
      const problem = await problemError(answer, "update");
      this.#emit({ type: "updateRefused", round, message: problem.message });
    } else {
      this.#sent.set(round, { examples, metrics });
      this.#emit({ type: "updateSent", round, examples, bytes: update.length, metrics });
    }
    return true;
  }

  /**
   * A securely aggregated round after local training: fresh keys, sealed shares, the masked
   * update, the revealed shares (see the federated chapter). A round the server starts again
   * or moves on from is left; the next check-in says what comes next.
   */
  async #secureSteps(round, global, trained) {
    const path = `/v1/federations/${this.id}/rounds/${round}/secure`;
    const participant = this.participant;
    const left = (message) => {
      this.#emit({ type: "updateRefused", round, message });
      return true;
    };
    const secrets = await this.#trainer._secureRound(this.#secure.threshold, this.#secure.clipNorm);
    const keys = await this.#link.call("POST", `${path}/keys`, {
      json: { participant, keys: await secrets.publicKeys() },
      accept: [409],
    });
    if (keys instanceof Response) return left("the round's roster was fixed before this client's keys arrived");
    const roster = await this.#poll(`${path}/roster`, keys.try);
    if (!roster) return left("the round started again before its roster was fixed");
    const me = roster.members.find((m) => m.participant === participant)?.index;
    if (me === undefined) return left("this client is not in the round's roster");
    const shares = await secrets.sealShares(me, roster.members, roster.context);
    const sent = await this.#link.call("POST", `${path}/shares`, { json: { participant, shares }, accept: [409] });
    if (sent instanceof Response) return left("the shares were relayed before this client's arrived");
    const inbox = await this.#poll(`${path}/inbox?participant=${encodeURIComponent(participant)}`, keys.try);
    if (!inbox?.sharers.includes(me)) return left("this client's shares did not go out in time");
    const sharers = roster.members.filter((m) => inbox.sharers.includes(m.index));
    const masked = await secrets.maskedUpdate(me, global, trained.update, trained.examples, sharers, roster.context);
    const query = `participant=${encodeURIComponent(participant)}&examples=${trained.examples}`;
    const posted = await this.#link.call("POST", `/v1/federations/${this.id}/rounds/${round}/updates?${query}`, {
      body: masked,
      accept: [409],
    });
    if (posted instanceof Response) return left("the round moved on before the masked update arrived");
    const survived = await this.#poll(`${path}/survivors`, keys.try);
    if (!survived) return left("the round started again before its survivors were known");
    const revealed = await secrets.reveal(me, inbox.shares, sharers, survived.survivors, roster.context);
    const answer = await this.#link.call("POST", `${path}/reveal`, {
      json: { participant, revealed },
      accept: [409],
    });
    if (answer instanceof Response) return left("the round moved on before this client's shares were revealed");
    this.#sent.set(round, { examples: trained.examples });
    this.#emit({ type: "updateSent", round, examples: trained.examples, bytes: masked.length, secure: true });
    return true;
  }

  /** Polls a secure step until it is `ready`; `null` when the round started again, moved on, or this client left. */
  async #poll(path, tried) {
    const patience = Date.now() + (this.#secure.phaseSecs * 4 + 3600) * 1000;
    while (!this.#left && Date.now() < patience) {
      const answer = await this.#link.call("GET", path, { accept: [409] });
      if (answer instanceof Response || answer.try !== tried) return null;
      if (answer.ready) return answer;
      await this.#pause();
    }
    return null;
  }

  #roundClosed(round) {
    const sent = this.#sent.get(round);
    this.#sent.delete(round);
    const summary = { round, participated: sent !== undefined, ...sent };
    this.#emit({ type: "roundClosed", ...summary });
    for (const callback of this.#roundListeners) {
      try {
        callback(summary);
      } catch {
        /* a throwing listener must not stop the client */
      }
    }
  }

  /** The federation completed: its final model into this Kiln's store, and the result. */
  async #completed(next) {
    const response = await this.#link.call("GET", `/v1/federations/${this.id}/model`, { raw: true });
    const modelId = await this.#trainer.importModel(new Uint8Array(await response.arrayBuffer()), { force: true });
    return {
      status: "completed",
      federation: this.id,
      participant: this.participant,
      rounds: next.rounds,
      result: next.result,
      modelId,
    };
  }
}
