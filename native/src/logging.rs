//! The binary's diagnostics (the server's, mostly) through `tracing`: human-readable lines on
//! stderr by default, one JSON object per line with `KILN_LOG_FORMAT=json` (for log
//! collectors); `KILN_LOG` filters them (`warn`, `kiln_native::serve=debug`, …; default
//! `info`). What the CLI tells its user (progress, results, errors) is not a diagnostic and stays
//! plain text.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; a bad `KILN_LOG` or `KILN_LOG_FORMAT` is said once and the defaults
/// are used.
pub fn init() {
    let filter = match std::env::var("KILN_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("kiln: KILN_LOG={spec:?} is not a log filter ({e}); logging at `info`");
            EnvFilter::new("info")
        }),
        Err(_) => EnvFilter::new("info"),
    };
    let json = match std::env::var("KILN_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") | Err(_) => false,
        Ok(other) => {
            eprintln!(
                "kiln: KILN_LOG_FORMAT={other:?}: allowed are `text` (the default) and `json`"
            );
            false
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A subscriber already installed (a test harness) is kept.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
