//! The HTTP server of `tmctl serve`, hardened for a network it does not trust: request headers
//! must arrive within `web.header_read_timeout`, a request is answered within
//! `web.request_timeout` (503 after it), at most `web.max_connections` connections are served
//! at once (the next ones get 503 and are closed), bodies are limited to `web.max_body` (413),
//! and every response carries `X-Content-Type-Options`, `Referrer-Policy`, `X-Frame-Options` and a
//! Content-Security-Policy that allows no inline script.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpLimits;

/// Scripts only from the UI's own static files; styles may be inline (`style=` on bars); no
/// frames, plugins or foreign form targets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What an over-cap connection reads before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\n\
connection: close\r\ncontent-length: 38\r\n\r\ntoo many connections; try again later\n";

/// The security headers, the body limit and the request timeout around `router`.
pub fn harden(router: Router, limits: &HttpLimits) -> Router {
    let max_body = limits.max_body;
    let timeout = limits.request_timeout;
    router.layer(DefaultBodyLimit::max(usize::try_from(max_body).unwrap_or(usize::MAX))).layer(
        axum::middleware::from_fn(move |req: Request, next: Next| async move {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let mut response = if declared.is_some_and(|n| n > max_body) {
                (StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {max_body} bytes (web.max_body)\n"))
                    .into_response()
            } else {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("no answer within {} (web.request_timeout)\n", crate::timefmt::human_duration(timeout)),
                    )
                        .into_response(),
                }
            };
            add_security_headers(response.headers_mut());
            response
        }),
    )
}

fn add_security_headers(h: &mut axum::http::HeaderMap) {
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
}

/// Serves `router` on `listener` until `shutdown` fires, then lets open connections finish
/// their request and waits for them. Every request carries `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, router: Router, limits: HttpLimits, shutdown: CancellationToken) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let open = Arc::new(Semaphore::new(max));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max, "connection refused: web.max_connections reached");
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(BUSY)).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let router = router.clone();
        let stop = shutdown.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move {
                    Ok::<_, Infallible>(
                        router.oneshot(req.map(axum::body::Body::new)).await.unwrap_or_else(|e| match e {}),
                    )
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
    // Wait for the open connections (each finishes its request, then closes).
    let _ = open.acquire_many(max as u32).await;
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::routing::{get, post};

    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(200),
            max_connections: 2,
            max_body: 1024,
        }
    }

    async fn start() -> (String, CancellationToken) {
        let router = Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
            .route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }))
            .route("/echo", post(|body: String| async move { body.len().to_string() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, harden(router, &limits()), limits(), stop.clone()));
        (format!("http://{addr}"), stop)
    }

    #[tokio::test]
    async fn headers_timeouts_and_limits_over_real_http() {
        let (url, stop) = start().await;
        let http = reqwest::Client::new();
        let r = http.get(format!("{url}/fast")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self';"));
        assert_eq!(http.get(format!("{url}/peer")).send().await.unwrap().text().await.unwrap(), "127.0.0.1");

        let r = http.get(format!("{url}/slow")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["x-frame-options"], "DENY");

        let r = http.post(format!("{url}/echo")).body("x".repeat(2048)).send().await.unwrap();
        assert_eq!(r.status(), 413);
        let r = http.post(format!("{url}/echo")).body("x".repeat(512)).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "512");
        stop.cancel();
    }

    #[tokio::test]
    async fn slow_headers_are_cut_and_connections_are_capped() {
        use tokio::io::AsyncReadExt;
        let (url, stop) = start().await;
        let addr = url.trim_start_matches("http://").to_string();
        // Two connections that never finish their headers hold both places...
        let mut a = tokio::net::TcpStream::connect(&addr).await.unwrap();
        a.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut b = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...so a third is told 503 at once.
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(2), c.read_to_string(&mut text)).await.unwrap().unwrap();
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        // The header-read timeout closes the slow ones, and the server takes requests again.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), a.read_to_end(&mut rest)).await.expect("slow client cut").ok();
        tokio::time::timeout(Duration::from_secs(3), b.read_to_end(&mut rest)).await.expect("silent client cut").ok();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = reqwest::get(format!("{url}/fast")).await.unwrap();
        assert_eq!(r.status(), 200);
        stop.cancel();
    }
}
