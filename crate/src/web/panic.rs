//! Panics inside wasm: the hook fails every running job with the panic message and tells the
//! JS wrapper, which then starts a fresh wasm instance for later calls (a trap leaves the old
//! one's memory and locks in an unknown state).

use super::job::JobShared;
use std::cell::{Cell, RefCell};
use std::rc::Weak;
use wasm_bindgen::JsValue;

thread_local! {
    static RUNNING: RefCell<Vec<Weak<JobShared>>> = const { RefCell::new(Vec::new()) };
    static LISTENER: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
    static INJECTED: Cell<bool> = const { Cell::new(false) };
}

/// Registers a running job so a panic can fail it.
pub fn register(job: Weak<JobShared>) {
    RUNNING.with(|jobs| {
        if let Ok(mut jobs) = jobs.try_borrow_mut() {
            jobs.retain(|j| j.strong_count() > 0);
            jobs.push(job);
        }
    });
}

/// Sets the JS function the hook calls with the panic message.
pub fn set_listener(listener: js_sys::Function) {
    install();
    LISTENER.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(listener);
        }
    });
}

/// Fault injection for the recovery tests: the next job started panics in its first poll.
pub fn inject_into_next_job() {
    INJECTED.with(|flag| flag.set(true));
}

/// Panics if a fault was injected (called at the start of every job).
pub fn take_injected() {
    if INJECTED.with(|flag| flag.replace(false)) {
        panic!("injected fault (Kiln._injectPanic)");
    }
}

/// Installs the hook (once per instance).
pub fn install() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(install_hook);
}

fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info.payload_as_str().unwrap_or("no message");
        let message = format!(
            "internal error: Kiln panicked{place}: {payload}; Kiln restarts its wasm module for \
             the next call — please report the bug"
        );
        RUNNING.with(|jobs| {
            if let Ok(jobs) = jobs.try_borrow() {
                for job in jobs.iter().filter_map(Weak::upgrade) {
                    job.fail_from_panic(&message);
                }
            }
        });
        LISTENER.with(|slot| {
            if let Ok(slot) = slot.try_borrow()
                && let Some(listener) = slot.as_ref()
            {
                let _ = listener.call1(&JsValue::NULL, &JsValue::from_str(&message));
            }
        });
    }));
}
