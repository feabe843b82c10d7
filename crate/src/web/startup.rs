//! Runs the module's static constructors exactly once, before the engine is first used.
//!
//! cubecl registers its IR pieces with `inventory`, whose registrations are wasm constructors.
//! When no exported function calls `__wasm_call_ctors`, wasm-ld treats the module as a
//! "command" and wraps *every* export (each JS → wasm call, callbacks and externref shims
//! included) in a call to all constructors: on WebGPU that was most of a training step's
//! main-thread time. Calling it here, from `Kiln.open`, makes the module a library ("reactor")
//! whose exports run without that prologue.

use std::sync::Once;

unsafe extern "C" {
    /// Synthesised by wasm-ld: calls every static constructor of the module.
    fn __wasm_call_ctors();
}

/// Runs the constructors on the first call; later calls do nothing.
pub fn run_constructors_once() {
    static CONSTRUCTORS: Once = Once::new();
    CONSTRUCTORS.call_once(|| {
        // SAFETY: wasm-ld defines this function; the `Once` makes this the only call, and no
        // constructor depends on state created by Rust code that ran before it.
        unsafe { __wasm_call_ctors() }
    });
}
