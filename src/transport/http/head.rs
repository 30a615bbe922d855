//! Detaches a session-opening request's head from hyper's read buffer.
//!
//! hyper parses a request into slices of its connection's read buffer (8 to
//! 16 KiB): the URI and every header value share that one allocation. The
//! socket.io layer keeps the head of the request that opened a session for the
//! session's whole life (`req_parts()`, read for auth and addresses), and with
//! it, the whole buffer. Measured with heaptrack: 16 KiB of every idle
//! websocket peer's memory was that buffer. [`detach`] copies the URI (and
//! axum's `OriginalUri` extension, a clone of it) and the header values (a few hundred bytes) so the buffer is freed with the HTTP
//! connection. Only the headers switchboard reads are kept ([`KEPT`]):
//! anything else (cookies above all: kilobytes per browser, and credentials
//! for other services) would be held for the session's life for nothing
//! (issue 17, problem 5: 500 sessions with 390 KB of headers held 287 MB).
//! What is kept is bounded by `MAX_HEADER_BYTES`, the largest head hyper
//! reads. Requests of existing sessions (`sid=` in the query) are not kept
//! and pass untouched.

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::Response;

/// The headers a session keeps: the token (`authorization`), the client
/// address (`x-forwarded-for`), the origin check (`origin`, `host`), and the
/// websocket upgrade's (engineioxide reads `sec-websocket-key`).
pub const KEPT: [header::HeaderName; 7] = [
    header::AUTHORIZATION,
    header::HeaderName::from_static("x-forwarded-for"),
    header::ORIGIN,
    header::HOST,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
];

/// Middleware in front of the socket.io layer (see the module documentation).
pub async fn detach(mut request: Request, next: Next) -> Response {
    if opens_session(request.uri()) {
        detach_head(&mut request);
    }
    next.run(request).await
}

/// A socket.io request without a session id: a polling handshake or a direct websocket.
pub fn opens_session(uri: &Uri) -> bool {
    uri.path().starts_with("/socket.io") && crate::transport::wire::query::param(uri.query(), "sid").is_none()
}

/// Replaces the URI and header values with copies that own their bytes.
fn detach_head(request: &mut Request) {
    if let Ok(uri) = request.uri().to_string().parse::<Uri>() {
        // axum's router keeps a clone of the URI as an extension, sharing the buffer too.
        if let Some(OriginalUri(original)) = request.extensions_mut().get_mut::<OriginalUri>() {
            *original = uri.clone();
        }
        *request.uri_mut() = uri;
    }
    let mut owned = HeaderMap::with_capacity(request.headers().len());
    // `iter` yields every value of a repeated header, in order.
    for (name, value) in request.headers().iter().filter(|(name, _)| KEPT.contains(name)) {
        // A valid value stays valid when copied; the fallback only keeps it shared.
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    *request.headers_mut() = owned;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use bytes::Bytes;

    fn inside(buffer: &Bytes, bytes: &[u8]) -> bool {
        buffer.as_ptr_range().contains(&bytes.as_ptr())
    }

    /// A request whose URI and header values are slices of `buffer`, as hyper makes them.
    fn parsed_like_hyper(buffer: &Bytes) -> Request {
        let text = std::str::from_utf8(buffer).unwrap();
        let slice = |s: &str| buffer.slice_ref(text.find(s).map(|at| &buffer[at..at + s.len()]).unwrap());
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = Uri::from_maybe_shared(slice("/socket.io/?EIO=4&transport=websocket")).unwrap();
        let original = OriginalUri(request.uri().clone());
        request.extensions_mut().insert(original);
        let headers = request.headers_mut();
        headers.insert("origin", HeaderValue::from_maybe_shared(slice("http://a.test")).unwrap());
        headers.insert("cookie", HeaderValue::from_maybe_shared(slice("session=s3cret")).unwrap());
        headers.insert("x-padding", HeaderValue::from_maybe_shared(slice("AAAA")).unwrap());
        headers.append("x-forwarded-for", HeaderValue::from_maybe_shared(slice("10.0.0.1")).unwrap());
        headers.append("x-forwarded-for", HeaderValue::from_maybe_shared(slice("10.0.0.2")).unwrap());
        request
    }

    #[test]
    fn a_session_opening_request_keeps_no_byte_of_the_read_buffer() {
        let buffer = Bytes::from(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\norigin: http://a.test\r\ncookie: session=s3cret\r\nx-padding: AAAA\r\n\
             x-forwarded-for: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n\r\n"
                .to_owned(),
        );
        let mut request = parsed_like_hyper(&buffer);
        assert!(inside(&buffer, request.headers()["origin"].as_bytes()), "the fixture shares the buffer");
        detach_head(&mut request);
        assert_eq!(request.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert!(!inside(&buffer, request.uri().path().as_bytes()));
        let OriginalUri(original) = request.extensions().get::<OriginalUri>().unwrap();
        assert_eq!(original, request.uri());
        assert!(!inside(&buffer, original.path().as_bytes()), "axum's copy of the URI is detached too");
        assert_eq!(request.headers()["origin"], "http://a.test");
        let forwarded: Vec<_> = request.headers().get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded, ["10.0.0.1", "10.0.0.2"], "repeated headers keep every value, in order");
        assert!(request.headers().values().all(|v| !inside(&buffer, v.as_bytes())));
        assert!(request.headers().get("cookie").is_none(), "cookies are not kept");
        assert!(request.headers().get("x-padding").is_none(), "nor any header switchboard does not read");
        assert_eq!(request.headers().len(), 3);
    }

    #[test]
    fn only_requests_without_a_session_id_open_one() {
        let opens = |uri: &str| opens_session(&uri.parse().unwrap());
        assert!(opens("/socket.io/?EIO=4&transport=polling"));
        assert!(opens("/socket.io/?EIO=4&transport=websocket&token=x"));
        assert!(!opens("/socket.io/?EIO=4&transport=websocket&sid=abc"));
        assert!(!opens("/api/rooms"));
    }
}
