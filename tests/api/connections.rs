//! The listener's limits: half-sent requests and idle connections are closed, and no client
//! can hold more than its share of connections.

use std::time::Duration;

use corridor::config::Dur;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection; returns what it sent. Bounded so that a
/// server that never closes fails the test instead of hanging it.
async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

/// A complete keep-alive request for the public health route.
const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn a_request_head_that_never_completes_is_closed() {
    let Some(app) = spawn_app_with(|c| c.header_read_timeout = Dur(Duration::from_secs(1))).await
    else {
        return;
    };
    let mut conn = connect(&app).await;
    conn.write_all(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .await
        .expect("write");
    read_to_close(&mut conn).await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let Some(app) = spawn_app_with(|c| {
        c.header_read_timeout = Dur(Duration::from_secs(600));
        c.request_timeout = Dur(Duration::from_millis(500));
        c.idle_timeout = Dur(Duration::from_secs(1));
    })
    .await
    else {
        return;
    };
    let mut conn = connect(&app).await;
    conn.write_all(HEALTH.as_bytes()).await.expect("write");
    // The request is answered; then the connection sits idle and is closed.
    let seen = read_to_close(&mut conn).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
}

#[tokio::test]
async fn one_client_cannot_hold_more_than_its_share_of_connections() {
    let Some(app) = spawn_app_with(|c| c.max_connections_per_client = 4).await else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = connect(&app).await;
        // A request on each, so every one is surely accepted and counted before the next.
        conn.write_all(HEALTH.as_bytes()).await.expect("write");
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).await.expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(conn);
    }
    let mut extra = connect(&app).await;
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"error\":\"RATE_LIMITED\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: req_"), "{answer}");
    // Giving one back makes room again.
    drop(held.pop());
    let resp = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match app.client.get(format!("{}/healthz", app.address)).send().await {
                Ok(r) if r.status() == 200 => break r,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(resp.is_ok(), "no connection was admitted after one closed");
}

#[tokio::test]
async fn past_the_connection_limit_a_new_connection_is_told_503() {
    let Some(app) = spawn_app_with(|c| c.max_connections = 3).await else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = connect(&app).await;
        conn.write_all(HEALTH.as_bytes()).await.expect("write");
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).await.expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(conn);
    }
    let mut extra = connect(&app).await;
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"error\":\"UNAVAILABLE\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
}

/// Requests hyper refuses itself still get the error format and a request id.
#[tokio::test]
async fn requests_the_http_parser_refuses_get_the_error_format() {
    let Some(app) = spawn_app().await else { return };
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("a malformed request line", b"GARBAGE\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (
            "a header with bytes no header may hold",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        ("headers too large", huge.into_bytes(), "HTTP/1.1 431"),
    ];
    for (case, request, status) in cases {
        let mut conn = connect(&app).await;
        let _ = conn.write_all(&request).await;
        let answer = read_to_close(&mut conn).await;
        assert!(answer.starts_with(status), "{case}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("x-request-id: req_"), "{case}: {answer}");
        assert!(answer.contains("\"error\":\"INVALID_REQUEST\""), "{case}: {answer}");
    }
}
