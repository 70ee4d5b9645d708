//! The operator's HTTP port (`--metrics-addr`), on executor 0:
//! - `GET /metrics`: the Prometheus text format (`node::metrics`), of the
//!   router's groups and of what the shell measures;
//! - `GET /health`: 200 while the process serves (the loop answers it, so
//!   a loop stuck on a full disk does not look healthy);
//! - `GET /ready`: 200 once a readiness probe passes (`Router::probe_readiness`:
//!   a ReadIndex round in every group this member holds: a leader confirmed
//!   by a quorum since the request came, and its commit index applied
//!   here), else 503 with the reason. A probe gets `READY_WAIT`.
//!
//! HEAD is answered as GET without the body. One request per connection,
//! answered with `Connection: close`; a request head over
//! `REQUEST_BYTES_MAX` or slower than `REQUEST_WAIT` is dropped, and so
//! is a connection over `CONNECTIONS_MAX` open at once. Nothing
//! here blocks the loop: a request leaves an `Ask` in `Asks`, which the
//! loop answers at its next turn (there is one at least every tick).

use super::mailbox::Mailbox;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The longest request head (request line and headers) read.
const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request head.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// How long `/ready` and `/metrics` wait for the loop's answer.
pub const READY_WAIT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed at once (the port is for a
/// scraper and a load balancer, not for crowds).
const CONNECTIONS_MAX: usize = 64;

/// A request the loop answers.
pub enum Ask {
    Metrics(Mailbox<String>),
    Health(Mailbox<()>),
    /// Ready, or why not.
    Ready(Mailbox<Result<(), String>>),
}

/// Requests waiting for the loop.
#[derive(Default)]
pub struct Asks {
    waiting: RefCell<Vec<Ask>>,
}

impl Asks {
    /// What came since the last call.
    pub fn take(&self) -> Vec<Ask> {
        std::mem::take(&mut self.waiting.borrow_mut())
    }
}

/// What a request head asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    Ready,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Accepts connections until the process ends.
pub async fn serve(listener: TcpListener, asks: Rc<Asks>) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        match listener.accept().await {
            Ok(stream) if open.get() >= CONNECTIONS_MAX => drop(stream),
            Ok(stream) => {
                open.set(open.get() + 1);
                let (asks, open) = (asks.clone(), open.clone());
                let served = async move {
                    answer(stream, asks).await;
                    open.set(open.get() - 1);
                };
                glommio::spawn_local(served).detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, asks: Rc<Asks>) {
    let _ = stream.set_read_timeout(Some(REQUEST_WAIT));
    let _ = stream.set_write_timeout(Some(REQUEST_WAIT));
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > REQUEST_BYTES_MAX {
            let _ = respond(&mut stream, 431, "request head too large\n", "text/plain", false).await;
            return;
        }
    }
    let (route, head_only) = route(&head);
    let (status, body, kind) = match route {
        Route::Metrics => match ask(&asks, Ask::Metrics).await {
            Some(text) => (200, text, "text/plain; version=0.0.4; charset=utf-8"),
            None => (503, "the server loop did not answer in time\n".to_string(), "text/plain"),
        },
        Route::Health => match ask(&asks, Ask::Health).await {
            Some(()) => (200, "ok\n".to_string(), "text/plain"),
            None => (503, "the server loop did not answer in time\n".to_string(), "text/plain"),
        },
        Route::Ready => match ask(&asks, Ask::Ready).await {
            Some(Ok(())) => (200, "ready\n".to_string(), "text/plain"),
            Some(Err(why)) => (503, format!("not ready: {why}\n"), "text/plain"),
            None => (503, format!("not ready: no answer within {READY_WAIT:?}\n"), "text/plain"),
        },
        Route::NotFound => (404, "not found: try /metrics, /health or /ready\n".to_string(), "text/plain"),
        Route::MethodNotAllowed => (405, "only GET and HEAD\n".to_string(), "text/plain"),
        Route::BadRequest => (400, "bad request\n".to_string(), "text/plain"),
    };
    let _ = respond(&mut stream, status, &body, kind, head_only).await;
}

/// Leaves an ask for the loop and waits for its answer, for `READY_WAIT` at most.
async fn ask<T: 'static>(asks: &Asks, make: fn(Mailbox<T>) -> Ask) -> Option<T> {
    let answer = Mailbox::new(1);
    asks.waiting.borrow_mut().push(make(answer.clone()));
    let waited = async { answer.take_all().await.into_iter().next() };
    let late = async {
        glommio::timer::sleep(READY_WAIT).await;
        None
    };
    futures_lite::future::or(waited, late).await
}

/// The route of a request head, and whether it is a HEAD.
fn route(head: &[u8]) -> (Route, bool) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return (Route::BadRequest, false);
    };
    if !version.starts_with("HTTP/1.") {
        return (Route::BadRequest, false);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return (Route::MethodNotAllowed, false);
    }
    let path = target.split('?').next().unwrap_or_default();
    let route = match path {
        "/metrics" => Route::Metrics,
        "/health" | "/healthz" => Route::Health,
        "/ready" | "/readyz" => Route::Ready,
        _ => Route::NotFound,
    };
    (route, head_only)
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    kind: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.flush().await?;
    stream.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_request_heads() {
        let route_of = |head: &str| route(head.as_bytes());
        assert_eq!(route_of("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), (Route::Metrics, false));
        assert_eq!(route_of("GET /metrics?name[]=x HTTP/1.0\r\n\r\n"), (Route::Metrics, false));
        assert_eq!(route_of("HEAD /ready HTTP/1.1\r\n\r\n"), (Route::Ready, true));
        assert_eq!(route_of("GET /healthz HTTP/1.1\r\n\r\n"), (Route::Health, false));
        assert_eq!(route_of("GET / HTTP/1.1\r\n\r\n"), (Route::NotFound, false));
        assert_eq!(route_of("POST /metrics HTTP/1.1\r\n\r\n"), (Route::MethodNotAllowed, false));
        assert_eq!(route_of("GET /metrics\r\n\r\n"), (Route::BadRequest, false));
        assert_eq!(route_of("GET /metrics SPDY/3\r\n\r\n"), (Route::BadRequest, false));
        assert_eq!(route_of("\u{0}\u{ff}\r\n\r\n"), (Route::BadRequest, false));
    }
}
