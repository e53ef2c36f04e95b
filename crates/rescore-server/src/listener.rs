//! The accept loop of the API port: hyper HTTP/1.1 connections under limits that `axum::serve`
//! does not offer (docs/configuration.md, `[server]`):
//!
//! - at most `max_connections` open connections; one more is answered with a JSON 503
//!   (`too_many_connections`) and closed;
//! - a connection's first request head must arrive within `header_timeout` (later heads on a
//!   keep-alive connection: hyper's own header read timeout, the same value), else it is closed;
//! - the first request head is checked before hyper sees it, so that what hyper would refuse with
//!   an empty 400 gets the contract's JSON error instead: a TLS handshake on the plain port, a
//!   malformed request line or header, an invalid or conflicting `Content-Length` (431 for a head
//!   over 64 KiB);
//! - the body deadline (`body_timeout`) is enforced where the body is read (`body::read_body`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rescore_api::{ErrorBody, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// The largest request head read before hyper takes over.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers parsed in the first request head.
const MAX_HEADERS: usize = 128;

/// Connection limits of the API port.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish their
/// in-flight requests (hyper's graceful shutdown) and returns when all have closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // e.g. out of file descriptors: back off instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let (app, stop) = (app.clone(), stop_rx.clone());
                        tasks.spawn(async move {
                            connection(stream, app, limits, stop).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        tasks.spawn(refuse(
                            stream,
                            ErrorCode::TooManyConnections,
                            format!(
                                "{} connections are open (server.max_connections); try again",
                                limits.max_connections
                            ),
                        ));
                    }
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    drop(listener);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    mut stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let head = tokio::select! {
        head = tokio::time::timeout(limits.header_timeout, read_first_head(&mut stream)) => head,
        _ = stop.changed() => return,
    };
    let prefix = match head {
        Err(_) => return, // no complete head in time: nothing to answer
        Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::Refused(code, message))) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                write_error(&mut stream, code, &message),
            )
            .await;
            return;
        }
        Ok(Ok(prefix)) => prefix,
    };
    let io = TokioIo::new(Prefixed {
        prefix,
        at: 0,
        stream,
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(io, TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

enum HeadError {
    /// The peer closed or the socket failed before a head: nothing to answer.
    Closed,
    Refused(ErrorCode, String),
}

/// Reads up to the end of the first request head and checks it; returns the bytes read.
async fn read_first_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = head_end(&buf) {
            check_head(&buf[..end])?;
            return Ok(buf);
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::Refused(
                ErrorCode::HeadersTooLarge,
                format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
            ));
        }
        let mut chunk = [0u8; 4096];
        let n = match read_some(stream, &mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            return Err(HeadError::Refused(
                ErrorCode::MalformedHttp,
                "a TLS handshake on a plain-HTTP port: this port speaks HTTP/1.1 without TLS"
                    .into(),
            ));
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// What hyper would refuse without a body, refused here with one.
fn check_head(head: &[u8]) -> Result<(), HeadError> {
    let refuse = |m: String| HeadError::Refused(ErrorCode::MalformedHttp, m);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(refuse("incomplete request head".into())),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Refused(
                ErrorCode::HeadersTooLarge,
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Err(refuse(format!("malformed HTTP request head: {e}"))),
    }
    if req.version != Some(1) && req.version != Some(0) {
        return Err(refuse("only HTTP/1.0 and HTTP/1.1 are served".into()));
    }
    let mut length: Option<&[u8]> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = h.value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 19 {
                return Err(refuse(format!(
                    "invalid Content-Length [{}]: expected a non-negative integer",
                    String::from_utf8_lossy(&value[..value.len().min(64)])
                )));
            }
            if length.is_some_and(|l| l != value) {
                return Err(refuse("conflicting Content-Length headers".into()));
            }
            length = Some(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if chunked && length.is_some() {
        return Err(refuse(
            "both Transfer-Encoding and Content-Length: send one of them".into(),
        ));
    }
    Ok(())
}

/// Answers a connection that will not be served with the contract's JSON error, then closes it.
async fn refuse(mut stream: TcpStream, code: ErrorCode, message: String) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        write_error(&mut stream, code, &message),
    )
    .await;
}

async fn write_error(stream: &mut TcpStream, code: ErrorCode, message: &str) -> io::Result<()> {
    let body = serde_json::to_vec(&ErrorBody::new(code, message.to_string()))
        .unwrap_or_else(|_| b"{}".to_vec());
    let status = code.http_status();
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    write_all(stream, head.as_bytes()).await?;
    write_all(stream, &body).await?;
    // Close our side, then read and drop what the client still sends until it closes too: closing
    // with unread input would reset the connection and could destroy the answer on its way.
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_shutdown(cx)).await?;
    let mut sink = [0u8; 4096];
    while read_some(stream, &mut sink).await? > 0 {}
    Ok(())
}

// tokio's `io-util` extension traits are not built in this workspace; these two are all it needs.
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The stream with the bytes already read in front of it.
struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &[u8]) -> Option<(ErrorCode, String)> {
        match check_head(head) {
            Ok(()) => None,
            Err(HeadError::Refused(code, m)) => Some((code, m)),
            Err(HeadError::Closed) => unreachable!(),
        }
    }

    #[test]
    fn heads_hyper_would_refuse_without_a_body_are_named() {
        assert!(
            refused(b"POST /v1/rescore HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
                .is_none()
        );
        assert!(refused(b"GET /healthz HTTP/1.0\r\n\r\n").is_none());
        let (code, m) =
            refused(b"POST /v1/rescore HTTP/1.1\r\nContent-Length: -5\r\n\r\n").expect("refused");
        assert_eq!(code, ErrorCode::MalformedHttp);
        assert!(m.contains("invalid Content-Length [-5]"), "{m}");
        let (_, m) = refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
            .expect("refused");
        assert!(m.contains("conflicting"), "{m}");
        let (_, m) =
            refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
                .expect("refused");
        assert!(
            m.contains("both Transfer-Encoding and Content-Length"),
            "{m}"
        );
        let (_, m) = refused(b"NOT HTTP AT ALL\r\n\r\n").expect("refused");
        assert!(m.contains("malformed HTTP request head"), "{m}");
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            refused(&many).expect("refused").0,
            ErrorCode::HeadersTooLarge
        );
    }

    #[tokio::test]
    async fn prefixed_stream_replays_the_head_then_reads_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let s = TcpStream::connect(addr).await.expect("connect");
            write_all(&s, b"world").await.expect("write");
        });
        let (stream, _) = listener.accept().await.expect("accept");
        let mut p = Prefixed {
            prefix: b"hello ".to_vec(),
            at: 0,
            stream,
        };
        let mut out = Vec::new();
        loop {
            let mut chunk = [0u8; 3];
            let mut buf = ReadBuf::new(&mut chunk);
            std::future::poll_fn(|cx| Pin::new(&mut p).poll_read(cx, &mut buf))
                .await
                .expect("read");
            if buf.filled().is_empty() {
                break;
            }
            out.extend_from_slice(buf.filled());
        }
        assert_eq!(out, b"hello world");
        client.await.expect("client");
    }
}
