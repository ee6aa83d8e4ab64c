//! Response bodies: which ones are rewritten ([`Masquerade::should_rewrite_body`]), how a rewritten response's
//! headers change ([`Masquerade::prepare_rewritten_response_headers`]), and [`BodyRewriter`], the streaming
//! rewriter of one body, in plain or gzip mode.
//!
//! Selected: text types that carry URLs (HTML, CSS, JavaScript, JSON, XML and any `+json`/`+xml` type such as
//! `application/xhtml+xml`, `image/svg+xml` or `application/manifest+json`), not compressed or gzip-compressed,
//! in a complete (non-206) response with a body, not sent as a download (`Content-Disposition: attachment`).
//! Everything else — images, archives, `application/octet-stream`, `text/plain`, bodies in br/zstd/deflate —
//! passes through byte for byte.
//!
//! Memory per response is bounded: a plain body holds back only a short tail (the longest pattern plus a few
//! bytes) between chunks. In gzip mode the decoder (`flate2::write::MultiGzDecoder`, so multi-member bodies
//! are fine) writes decompressed data in pieces of at most its buffer size straight into the rewriter and
//! the encoder, so even a body that decompresses to far more than its size needs no more; after each chunk
//! the encoder is sync-flushed, so what the app has sent reaches the browser without waiting for the end of
//! the body. The output is one gzip member at a fast level. Corrupt, truncated or CRC-failing input is an
//! error.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::{GzEncoder, MultiGzDecoder};
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderValue};

use crate::matcher::Stream;
use crate::{Masquerade, MasqueradeError};

/// The `Content-Encoding` of a response, as far as rewriting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// No `Content-Encoding`, or `identity`.
    Identity,
    /// `gzip` or `x-gzip`, once.
    Gzip,
    /// Anything else (br, zstd, deflate, stacked encodings): never rewritten.
    Other,
}

fn encoding(headers: &HeaderMap) -> Encoding {
    let mut tokens = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("identity"));
    match (tokens.next(), tokens.next()) {
        (None, _) => Encoding::Identity,
        (Some(t), None) if t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip") => {
            Encoding::Gzip
        }
        _ => Encoding::Other,
    }
}

/// Whether `Content-Type` names a text type that is rewritten.
fn is_text_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    if subtype.ends_with("+json") || subtype.ends_with("+xml") {
        return true;
    }
    matches!(
        (kind, subtype),
        ("text", "html" | "css" | "javascript" | "ecmascript" | "xml")
            | (
                "application",
                "javascript" | "x-javascript" | "ecmascript" | "json" | "xml"
            )
    )
}

fn is_attachment(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|d| d.trim().eq_ignore_ascii_case("attachment"))
}

impl Masquerade {
    /// Whether the body of a response with this status and these headers should go through
    /// [`Masquerade::body_rewriter`]. True only when body rewriting is on and the response is:
    ///
    /// - complete and with a body: not 1xx (including 101 upgrades), 204, 206 or 304, no `Content-Range`,
    ///   no `Upgrade` header;
    /// - a text type: `text/html`, `text/css`, `text/javascript`, `application/javascript`,
    ///   `application/json`, `application/xml`, `text/xml`, or any `*/*+json` / `*/*+xml` — not `text/plain`
    ///   (file contents, logs) and never a binary type;
    /// - not a download (`Content-Disposition: attachment`), so files the app stores come out unchanged;
    /// - not encoded, or gzip (`gzip`/`x-gzip`). Bodies in br, zstd, deflate or stacked encodings pass through
    ///   untouched: they are not decoded here. [`Masquerade::rewrite_request_headers`] narrows the request's
    ///   `Accept-Encoding` to gzip when body rewriting is on, so a well-behaved app does not send them.
    ///
    /// Responses to `HEAD` have no body: the proxy should not ask (their `Content-Length` is worth keeping).
    pub fn should_rewrite_body(&self, status: u16, headers: &HeaderMap) -> bool {
        self.bodies
            && (200..600).contains(&status)
            && !matches!(status, 204 | 206 | 304)
            && !headers.contains_key(header::CONTENT_RANGE)
            && !headers.contains_key(header::UPGRADE)
            && is_text_type(headers)
            && !is_attachment(headers)
            && encoding(headers) != Encoding::Other
    }

    /// Adjust the headers of a response whose body is rewritten: `Content-Length` is removed (the length
    /// changes; the proxy streams the body chunked), a strong `ETag` becomes weak (`"x"` → `W/"x"`: the bytes
    /// differ but the content is equivalent, so revalidation keeps working), digests of the original bytes
    /// (`Content-MD5`, `Digest`, `Content-Digest`, `Repr-Digest`) are removed, and `Accept-Ranges: none` tells
    /// the client not to ask for byte ranges, which would address the original bytes. `Content-Encoding` is
    /// kept: gzip bodies are re-compressed.
    pub fn prepare_rewritten_response_headers(&self, headers: &mut HeaderMap) {
        headers.remove(header::CONTENT_LENGTH);
        for name in ["content-md5", "digest", "content-digest", "repr-digest"] {
            headers.remove(name);
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
        if let Some(etag) = headers.get(header::ETAG) {
            let bytes = etag.as_bytes();
            if !bytes.starts_with(b"W/") {
                let mut weak = b"W/".to_vec();
                weak.extend_from_slice(bytes);
                match HeaderValue::from_bytes(&weak) {
                    Ok(v) => {
                        headers.insert(header::ETAG, v);
                    }
                    Err(_) => {
                        headers.remove(header::ETAG);
                    }
                }
            }
        }
    }

    /// A rewriter for the body of a response with these headers (the `Content-Encoding` decides the mode).
    /// Use it only when [`Masquerade::should_rewrite_body`] said yes; for an encoding other than identity or
    /// gzip, or with body rewriting off, it passes bytes through unchanged.
    pub fn body_rewriter(&self, headers: &HeaderMap) -> BodyRewriter {
        let mode = if !self.bodies {
            Mode::Passthrough
        } else {
            match encoding(headers) {
                Encoding::Identity => Mode::Plain(Stream::new(Arc::clone(&self.matcher))),
                Encoding::Gzip => Mode::Gzip(Box::new(GzipPipeline::new(Stream::new(Arc::clone(
                    &self.matcher,
                ))))),
                Encoding::Other => Mode::Passthrough,
            }
        };
        BodyRewriter { mode }
    }
}

/// Rewrites one response body, chunk by chunk. Create it with [`Masquerade::body_rewriter`].
pub struct BodyRewriter {
    mode: Mode,
}

enum Mode {
    Plain(Stream),
    Gzip(Box<GzipPipeline>),
    /// Encodings that cannot be rewritten, or body rewriting off: bytes pass unchanged.
    Passthrough,
    /// After `finish` or an error.
    Done,
}

impl BodyRewriter {
    /// Feed the next chunk of the body as received from the app; returns the bytes to send on now (may be
    /// empty while a possible match straddles the chunk's end, or while gzip input is buffered).
    /// An error (corrupt gzip) ends this rewriter: the proxy should abort the response.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, MasqueradeError> {
        match &mut self.mode {
            Mode::Plain(stream) => {
                let mut out = Vec::with_capacity(chunk.len() + 64);
                stream.push(chunk, &mut out);
                Ok(Bytes::from(out))
            }
            Mode::Gzip(gz) => gz.push(chunk).inspect_err(|_| self.mode = Mode::Done),
            Mode::Passthrough => Ok(Bytes::copy_from_slice(chunk)),
            Mode::Done => Err(MasqueradeError::Finished),
        }
    }

    /// End of body: returns the remaining bytes (the held-back tail; for gzip also the trailer). Checks that
    /// a gzip body was complete. The rewriter cannot be used afterwards.
    pub fn finish(&mut self) -> Result<Bytes, MasqueradeError> {
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Plain(mut stream) => {
                let mut out = Vec::new();
                stream.finish(&mut out);
                Ok(Bytes::from(out))
            }
            Mode::Gzip(gz) => gz.finish(),
            Mode::Passthrough => Ok(Bytes::new()),
            Mode::Done => Err(MasqueradeError::Finished),
        }
    }

    /// Whether this rewriter leaves the body unchanged (unsupported encoding, or body rewriting off).
    pub fn is_passthrough(&self) -> bool {
        matches!(self.mode, Mode::Passthrough)
    }
}

/// Where the decoder writes: rewrite, then compress.
struct Sink {
    stream: Stream,
    encoder: GzEncoder<Vec<u8>>,
    scratch: Vec<u8>,
    /// The encoder got data since its last flush.
    dirty: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scratch.clear();
        self.stream.push(buf, &mut self.scratch);
        if !self.scratch.is_empty() {
            self.encoder.write_all(&self.scratch)?;
            self.dirty = true;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // The encoder is flushed explicitly, once per pushed chunk.
        Ok(())
    }
}

/// gunzip → rewrite → gzip, for one body.
struct GzipPipeline {
    decoder: MultiGzDecoder<Sink>,
    /// Any input at all: an empty body stays empty rather than being a truncated gzip stream.
    seen_input: bool,
}

impl GzipPipeline {
    fn new(stream: Stream) -> Self {
        let sink = Sink {
            stream,
            encoder: GzEncoder::new(Vec::new(), Compression::fast()),
            scratch: Vec::new(),
            dirty: false,
        };
        GzipPipeline {
            decoder: MultiGzDecoder::new(sink),
            seen_input: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, MasqueradeError> {
        if chunk.is_empty() {
            return Ok(Bytes::new());
        }
        self.seen_input = true;
        self.decoder
            .write_all(chunk)
            .map_err(MasqueradeError::Gzip)?;
        // Push everything decodable so far through the rewriter.
        self.decoder.flush().map_err(MasqueradeError::Gzip)?;
        let sink = self.decoder.get_mut();
        if sink.dirty {
            sink.encoder.flush().map_err(MasqueradeError::Gzip)?;
            sink.dirty = false;
        }
        Ok(Bytes::from(std::mem::take(sink.encoder.get_mut())))
    }

    fn finish(mut self) -> Result<Bytes, MasqueradeError> {
        if !self.seen_input {
            return Ok(Bytes::new());
        }
        self.decoder.try_finish().map_err(MasqueradeError::Gzip)?;
        let mut sink = self.decoder.finish().map_err(MasqueradeError::Gzip)?;
        sink.scratch.clear();
        sink.stream.finish(&mut sink.scratch);
        sink.encoder
            .write_all(&sink.scratch)
            .map_err(MasqueradeError::Gzip)?;
        let out = sink.encoder.finish().map_err(MasqueradeError::Gzip)?;
        Ok(Bytes::from(out))
    }
}
