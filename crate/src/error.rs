//! The error type every fallible Kiln operation returns.

use thiserror::Error;

/// Everything that can go wrong in Kiln, grouped by who can fix it.
#[derive(Debug, Error)]
pub enum KilnError {
    /// The configuration is malformed or invalid. The message names the field path, the value
    /// and what is allowed.
    #[error("config error: {0}")]
    Config(String),

    /// The data set could not be read or does not fit the configuration.
    #[error("data error: {0}")]
    Data(String),

    /// A file or directory could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What Kiln was doing (and with which path).
        context: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The requested backend (wgpu, cuda, f16, ...) is not available on this machine.
    #[error("backend unavailable: {0}")]
    BackendUnavailable(String),

    /// A model in the store or a model file is missing, corrupt or of another format.
    #[error("model error: {0}")]
    Model(String),

    /// Training diverged or failed on the device.
    #[error("training failed: {0}")]
    Training(String),

    /// The job was cancelled before it finished.
    #[error("the job was cancelled")]
    Cancelled,

    /// A bad argument from a caller (CLI flag, JS argument).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A bug or an unexpected device failure inside Kiln.
    #[error("internal error: {0}")]
    Internal(String),
}

impl KilnError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the caller's input (config, data, arguments, model files) caused the error,
    /// as opposed to an internal failure. The CLI maps this to exit code 2.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Data(_)
                | Self::Io { .. }
                | Self::BackendUnavailable(_)
                | Self::Model(_)
                | Self::InvalidArgument(_)
        )
    }
}

/// Kiln's result type.
pub type Result<T, E = KilnError> = std::result::Result<T, E>;

/// What a message quotes from its input: `text`, cut after 80 characters, so that a message
/// (and the HTTP answer or JS `Error` carrying it) never echoes a megabyte of input back.
pub fn cut_short(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
