//! The server's HTTP connections: hyper (HTTP/1.1 and HTTP/2) serving the router, with hyper's
//! own request-head ceiling set well above the server's header limits (so that a head over
//! those limits reaches [`crate::serve::head_limits`] and is answered with problem+json), and a
//! graceful stop that lets open requests finish.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;

/// The most bytes of a request head that hyper reads before answering `431` by itself (with
/// no body: it happens before any of the server's code runs). Heads up to this size get the
/// server's own problem+json `431` when they pass [`crate::serve::head_limits::MAX_HEAD_BYTES`].
pub const HEAD_CEILING_BYTES: usize = 1 << 20;

/// The most header fields hyper parses (see [`HEAD_CEILING_BYTES`]; the server's own limit is
/// [`crate::serve::head_limits::MAX_HEADERS`]).
pub const HEADER_CEILING_COUNT: usize = 1000;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the open connections to finish their requests.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(HEAD_CEILING_BYTES)
        .max_headers(HEADER_CEILING_COUNT);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!("cannot accept a connection (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection's errors (a client that went away, a malformed request hyper has
            // answered) end that connection only.
            let _ = watched.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
