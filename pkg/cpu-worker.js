// The Web Worker of `kiln/cpu`'s `Kiln.create({ worker: true })`: it loads the CPU build only.
import { serveKilnInWorker } from "./worker-host.js";

serveKilnInWorker(import("./cpu.js"));
