// The worker side of `Kiln.create({ worker: true })`: a real Kiln in a dedicated Web Worker,
// driven by the proxy's messages (worker-proxy.js). The worker entries (`worker.js`,
// `cpu-worker.js`) hand it their package entry to load.
import { serializeError } from "./relayed-job.js";

/**
 * Serves the proxy's requests with the `Kiln` of `api` (a Promise of an entry module). The
 * handler is installed before anything is awaited: messages that arrive while the entry is
 * still loading would otherwise be dropped (a module worker's top-level await does not hold its
 * message queue).
 */
export function serveKilnInWorker(api) {
  let kiln = null;
  const jobs = new Map();
  const models = new Map();
  let nextModel = 0;
  const secureRounds = new Map();
  const post = (message) => globalThis.postMessage(message);

  const ops = {
    async create({ backend, storeDir, limits }) {
      const { Kiln } = await api;
      kiln = await Kiln.create({ backend, storeDir, limits });
      return kiln.backend;
    },
    train({ config, data, jobId }) {
      const job = kiln._trainWithId(config, data, jobId);
      jobs.set(jobId, job);
      (async () => {
        for await (const event of job.events()) post({ kind: "event", jobId, event, status: job.status() });
      })().catch(() => {
        /* the job's end is reported by waitForTraining below */
      });
      job.waitForTraining().then(
        (info) => post({ kind: "done", jobId, status: job.status(), info }),
        (error) => post({ kind: "done", jobId, status: job.status(), error: serializeError(error) }),
      );
      return { status: job.status() };
    },
    cancel({ jobId }) {
      jobs.get(jobId)?.cancel();
    },
    async preloadedModel({ source }) {
      const model = await kiln.preloadedModel(source);
      const handle = nextModel++;
      models.set(handle, model);
      return { handle, modelId: model.modelId, info: model.info };
    },
    predict({ handle, features, shape }) {
      return models.get(handle).predict(features, shape);
    },
    predictTexts({ handle, texts }) {
      return models.get(handle).predictTexts(texts);
    },
    export({ handle }) {
      return models.get(handle).export();
    },
    trainRound({ global, data }) {
      return kiln._trainRound(global, data);
    },
    async secureRound({ threshold, clipNorm }) {
      const handle = nextModel++;
      secureRounds.set(handle, await kiln._secureRound(threshold, clipNorm));
      return handle;
    },
    async secureStep({ handle, method, args }) {
      const round = secureRounds.get(handle);
      if (!round) throw new Error("this secure round is gone");
      const result = await round[method](...args);
      // A round's secrets are dropped once its shares are revealed.
      if (method === "reveal") secureRounds.delete(handle);
      return result;
    },
    listModels() {
      return kiln.listModels();
    },
    validateConfig({ config }) {
      return kiln.validateConfig(config);
    },
    memoryBytes() {
      return kiln.memoryBytes();
    },
    deleteModel({ modelId }) {
      return kiln.deleteModel(modelId);
    },
    importModel({ bytes, force }) {
      return kiln.importModel(bytes, { force });
    },
  };

  globalThis.onmessage = async ({ data: { id, op, args } }) => {
    try {
      if (op !== "create" && !kiln) throw new Error("the worker's Kiln is not created yet");
      post({ kind: "reply", id, ok: true, value: await ops[op](args) });
    } catch (e) {
      post({ kind: "reply", id, ok: false, error: serializeError(e) });
    }
  };
}
