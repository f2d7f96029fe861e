//! Header names as the client spelled them. API Gateway forwards a `$connect` request's headers
//! with the client's own spelling (an event AWS sent holds `x-api-key`, not `X-Api-Key`:
//! serverless-offline#753; "AWS does not lowercase header names": sst#3327), while hyper keeps
//! only lower-case names. So each connection's reads are watched until its request heads have
//! been seen, and each head is parsed again, as written, with `httparse`.
//!
//! The watch stops at the first upgrade (the rest is WebSocket frames), at a chunked body (whose
//! end it does not follow) or after [`MAX_HEAD_BYTES`]; a request whose head was not seen gets
//! hyper's lower-case names, and a log line says so.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of request heads (and bodies between them) watched on one connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers most clients send stay well under this; hyper's own default is 100.
const MAX_HEADERS: usize = 100;

/// A request's headers in the client's order and spelling, values as text (those that are not
/// UTF-8 are left out, as API Gateway's JSON events cannot hold them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHeaders(pub Vec<(String, String)>);

impl ClientHeaders {
    /// The headers of a request whose head was not seen: hyper's lower-case names.
    pub fn lower_case(headers: &HeaderMap) -> Self {
        Self(
            headers
                .iter()
                .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
                .collect(),
        )
    }

    /// The first value of the header `name`, whatever its case (header names are
    /// case-insensitive: RFC 9110, section 5.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(sent, _)| sent.eq_ignore_ascii_case(name)).map(|(_, value)| value)
    }

    /// Each header, as the client wrote it.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// As an extractor: the head as sent when it was seen, hyper's lower-case names otherwise.
impl<S: Sync> axum::extract::FromRequestParts<S> for ClientHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.remove::<ClientHeaders>().unwrap_or_else(|| ClientHeaders::lower_case(&parts.headers)))
    }
}

/// What one connection's reads showed, shared by its IO and its requests.
#[derive(Debug, Default)]
pub(crate) struct HeadLog {
    /// Set when the watch is over; read on every read, so checked without the lock.
    stopped: AtomicBool,
    /// Set by the connection's first byte.
    spoke: AtomicBool,
    unread: Mutex<Unread>,
}

#[derive(Debug, Default)]
struct Unread {
    /// Bytes read and not yet matched to a request.
    bytes: Vec<u8>,
    /// Body bytes still to come of the last request, not part of any head.
    skip: usize,
}

impl HeadLog {
    fn unread(&self) -> std::sync::MutexGuard<'_, Unread> {
        self.unread.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stop(&self, unread: &mut Unread) {
        self.stopped.store(true, Ordering::Relaxed);
        *unread = Unread::default();
    }

    /// Whether the client has sent anything at all.
    pub(crate) fn spoke(&self) -> bool {
        self.spoke.load(Ordering::Relaxed)
    }

    fn record(&self, read: &[u8]) {
        if self.stopped.load(Ordering::Relaxed) || read.is_empty() {
            return;
        }
        self.spoke.store(true, Ordering::Relaxed);
        let mut unread = self.unread();
        let skipped = unread.skip.min(read.len());
        unread.skip -= skipped;
        unread.bytes.extend_from_slice(&read[skipped..]);
        if unread.bytes.len() > MAX_HEAD_BYTES {
            self.stop(&mut unread);
        }
    }

    /// The head of the request hyper has just parsed, as the client wrote it; `None` once the
    /// watch is over or when the bytes do not hold a complete head.
    pub(crate) fn next_head(&self) -> Option<ClientHeaders> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let mut unread = self.unread();
        let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut parsed);
        let Ok(httparse::Status::Complete(head_len)) = request.parse(&unread.bytes) else {
            self.stop(&mut unread);
            return None;
        };
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter_map(|header| Some((header.name.to_owned(), std::str::from_utf8(header.value).ok()?.to_owned())))
            .collect();
        let named = |wanted: &str| headers.iter().find(|(name, _)| name.eq_ignore_ascii_case(wanted));
        if named("upgrade").is_some() || named("transfer-encoding").is_some() {
            self.stop(&mut unread);
        } else {
            let body_len =
                named("content-length").and_then(|(_, value)| value.trim().parse::<usize>().ok()).unwrap_or(0);
            let in_hand = body_len.min(unread.bytes.len() - head_len);
            unread.bytes.drain(..head_len + in_hand);
            unread.skip = body_len - in_hand;
        }
        Some(ClientHeaders(headers))
    }
}

/// A connection's IO that shows what is read to its [`HeadLog`].
pub(crate) struct Watched<T> {
    io: T,
    log: Arc<HeadLog>,
}

impl<T> Watched<T> {
    /// Watches `io`; the log is what its requests read the heads from.
    pub(crate) fn new(io: T) -> (Self, Arc<HeadLog>) {
        let log = Arc::new(HeadLog::default());
        (Self { io, log: log.clone() }, log)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.log.record(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(reads: &[&[u8]]) -> HeadLog {
        let log = HeadLog::default();
        for read in reads {
            log.record(read);
        }
        log
    }

    #[test]
    fn a_head_keeps_the_clients_spelling_and_order() {
        let log = log_of(&[b"GET /dev HTTP/1.1\r\nhost: a\r\nx-api-key: k1\r\nOrigin: o\r\n", b"TEST: t\r\n\r\n"]);

        let head = log.next_head().unwrap();

        let names: Vec<&str> = head.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["host", "x-api-key", "Origin", "TEST"]);
    }

    #[test]
    fn heads_after_a_body_are_found_past_it_even_when_it_arrives_later() {
        let log = log_of(&[b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"]);
        assert!(log.next_head().is_some());
        log.record(b"67890GET /b HTTP/1.1\r\nX-Second: 2\r\n\r\n");

        let second = log.next_head().unwrap();

        assert_eq!(second.0, [("X-Second".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn the_watch_ends_at_an_upgrade() {
        let log = log_of(&[b"GET /dev HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"]);
        assert!(log.next_head().is_some());

        log.record(b"GET /b HTTP/1.1\r\n\r\n");

        assert_eq!(log.next_head(), None);
        assert!(log.unread().bytes.is_empty());
    }
}
