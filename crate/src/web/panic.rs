//! Panics inside a job must not leave a Promise pending: the hook fails every running job with
//! the panic message before the wasm instance traps.

use super::job::JobShared;
use std::cell::RefCell;
use std::rc::Weak;

thread_local! {
    static RUNNING: RefCell<Vec<Weak<JobShared>>> = const { RefCell::new(Vec::new()) };
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

/// Installs the hook (once per instance).
pub fn install() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(install_hook);
}

fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let message = format!(
            "internal error: Kiln panicked ({info}); create a new Kiln instance (reload the page \
             or restart the process) and report the bug"
        );
        RUNNING.with(|jobs| {
            if let Ok(jobs) = jobs.try_borrow() {
                for job in jobs.iter().filter_map(Weak::upgrade) {
                    job.fail_from_panic(&message);
                }
            }
        });
    }));
}
