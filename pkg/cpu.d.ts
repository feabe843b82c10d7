// `kiln/cpu`: the same API as `kiln`, with the CPU wasm build only (`backend: "webgpu"` is
// refused, `"auto"` means the CPU).
export * from "./kiln.js";
