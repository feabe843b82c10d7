// The Web Worker of `kiln`'s `Kiln.create({ worker: true })`.
import { serveKilnInWorker } from "./worker-host.js";

serveKilnInWorker(import("./kiln.js"));
