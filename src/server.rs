//! The HTTP server: the accept loop, with the limits a public listener needs.
//!
//! `axum::serve` accepts every connection and waits on each forever, so a client can hold the
//! process's file descriptors with half-sent requests or idle connections until nothing else
//! gets in. This loop serves the same router through hyper with:
//! - a **header-read timeout**: a request's head must arrive within it (hyper also applies
//!   it to an idle HTTP/1 keep-alive connection waiting for its next request);
//! - an **idle timeout**: a connection with no bytes either way for that long is closed
//!   (gracefully: a request in flight is finished first);
//! - a **connection limit** and a **per-client limit** (by TCP peer; the configured trusted
//!   proxies are exempt, since every client behind them shares their address). A connection
//!   over a limit is answered at once in the API's error format — `503` over the total, `429`
//!   over the client's share — and closed, so the descriptors left stay for everybody else.
//!
//! Requests hyper refuses before the router sees them (a malformed request line, bad header
//! bytes, headers too large) are answered in the API's error format with a request id too.
//!
//! Shutdown stops accepting, asks every connection to finish gracefully and waits for them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::api::client::TrustedProxies;
use crate::api::error::{ApiError, Code};

/// The listener's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request's head must arrive within this.
    pub header_read_timeout: Duration,
    /// A connection silent both ways this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections per client address at most (trusted proxies exempt).
    pub max_connections_per_client: usize,
    /// Peers the per-client limit does not apply to.
    pub trusted_proxies: TrustedProxies,
}

/// Serves `router` on `listener` until `shutdown` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    // Refusals write a few hundred bytes; a flood of them is bounded too.
    let refusers = Arc::new(Semaphore::new(256));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a network hiccup: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(
                stream,
                &refusers,
                Code::Unavailable,
                "the server is at its connection limit, retry shortly",
            );
            continue;
        };
        let exempt = limits.trusted_proxies.trusts(peer.ip());
        let Some(client_slot) =
            per_client.enter(peer.ip(), exempt, limits.max_connections_per_client)
        else {
            refuse(
                stream,
                &refusers,
                Code::RateLimited,
                "too many connections from this address",
            );
            continue;
        };
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _slots = (slot, client_slot);
            let (io, activity) = Tracked::new(stream);
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service),
            );
            tokio::pin!(conn);
            let mut tick =
                tokio::time::interval(idle_timeout.div_f64(4.0).max(Duration::from_millis(10)));
            let mut closing = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = stopped(&mut stop), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = tick.tick(), if !closing => {
                        if activity.idle_for() >= idle_timeout {
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every open connection holds a slot: having them all back means every one has closed.
    let _ = slots
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await;
}

/// Resolves once `flag` is true (or its sender is gone). The guard `wait_for` returns is
/// dropped here, so the future stays `Send`.
async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// Answers a connection over a limit with the error and closes it, without reading its
/// request (a short drain first, so the client sees the answer rather than a reset).
fn refuse(stream: TcpStream, refusers: &Arc<Semaphore>, code: Code, message: &str) {
    let Ok(permit) = refusers.clone().try_acquire_owned() else {
        return; // A flood: drop it.
    };
    let err = ApiError::new(code, message);
    let answer = raw_error(err.status(), &err, Some(1));
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    });
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// A client's connection, counted until dropped.
struct ClientSlot {
    table: Arc<PerClient>,
    ip: Option<IpAddr>,
}

impl PerClient {
    fn enter(self: &Arc<Self>, ip: IpAddr, exempt: bool, max: usize) -> Option<ClientSlot> {
        if exempt {
            return Some(ClientSlot {
                table: self.clone(),
                ip: None,
            });
        }
        let ip = crate::api::client::canonical(ip);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            ip: Some(ip),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut map = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records when it last read or wrote, and writes hyper's own error answers
/// in the API's error format.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    rewrite: Option<Rewrite>,
}

impl Tracked {
    fn new(inner: TcpStream) -> (Tracked, Arc<Activity>) {
        let activity = Arc::new(Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        (
            Tracked {
                inner,
                activity: activity.clone(),
                rewrite: None,
            },
            activity,
        )
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.rewrite.is_none()
            && let Some(ours) = framework_error(buf)
        {
            self.rewrite = Some(Rewrite {
                bytes: ours,
                written: 0,
                stands_for: buf.len(),
            });
        }
        let this = &mut *self;
        if let Some(rw) = &mut this.rewrite {
            // Hyper's own answer is replaced by ours; hyper is told its bytes went out.
            while rw.written < rw.bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &rw.bytes[rw.written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => rw.written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let n = rw.stands_for;
            this.rewrite = None;
            this.activity.touch();
            return Poll::Ready(Ok(n));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    /// Not vectored: hyper then hands each response over in one buffer, so its own error
    /// answers can be recognised whole (see [`framework_error`]).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An answer being written in place of one of hyper's.
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    /// How many of hyper's bytes it replaces.
    stands_for: usize,
}

/// When `buf` is an error response hyper wrote by itself — a request it could not parse
/// (bad request line or header bytes, `414` URI too long, `431` headers too large, `505`) —
/// the same answer in the API's error format, with a request id. Recognised by what every
/// response of the router has and hyper's lack: an `x-request-id` header and a body.
fn framework_error(buf: &[u8]) -> Option<Vec<u8>> {
    let status_line = buf.get(..12)?;
    let version_ok = status_line.starts_with(b"HTTP/1.1 ") || status_line.starts_with(b"HTTP/1.0 ");
    if !version_ok || !matches!(status_line[9], b'4' | b'5') {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("\r\nx-request-id:") || !head.contains("\r\ncontent-length: 0") {
        return None;
    }
    let status: u16 = std::str::from_utf8(&status_line[9..12])
        .ok()?
        .parse()
        .ok()?;
    let status = axum::http::StatusCode::from_u16(status).ok()?;
    let (code, message) = match status.as_u16() {
        414 => (Code::InvalidRequest, "the request URI is too long"),
        431 => (Code::InvalidRequest, "the request headers are too large"),
        505 => (Code::InvalidRequest, "this HTTP version is not supported"),
        408 => (Code::RequestTimeout, "the request did not arrive in time"),
        s if s >= 500 => (Code::Internal, "internal error"),
        _ => (Code::InvalidRequest, "malformed HTTP request"),
    };
    Some(raw_error(status, &ApiError::new(code, message), None))
}

/// A whole HTTP/1.1 error response written by hand (for answers given outside the router):
/// the error format, a request id, `connection: close`, and `retry-after` when given.
fn raw_error(status: axum::http::StatusCode, err: &ApiError, retry_after: Option<u64>) -> Vec<u8> {
    let body = err.body();
    let retry = retry_after.map_or(String::new(), |s| format!("retry-after: {s}\r\n"));
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\nx-request-id: req_{}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        crate::idgen::v4().simple(),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::framework_error;

    #[test]
    fn hyper_error_answers_are_rewritten_and_ours_are_left_alone() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let ours = String::from_utf8(framework_error(hyper).unwrap()).unwrap();
        assert!(ours.starts_with("HTTP/1.1 431 "), "{ours}");
        assert!(ours.contains("x-request-id: req_"), "{ours}");
        assert!(
            ours.ends_with(
                r#"{"error":"INVALID_REQUEST","message":"the request headers are too large"}"#
            ),
            "{ours}"
        );
        let router = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nx-request-id: req_1\r\ncontent-length: 2\r\n\r\n{}";
        assert!(framework_error(router).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(framework_error(ok).is_none());
        assert!(framework_error(b"HTTP/1.1 4").is_none());
    }
}
