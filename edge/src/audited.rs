//! Writes a request's audit line when its response has been sent in full, cut short, or
//! dropped: latency and bytes out then cover the whole exchange, streamed events included.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;

use crate::audit::{AuditRecord, Auditor};
use crate::relay::{Body, BodyError};

struct Audited {
    inner: Body,
    record: Option<AuditRecord>,
    bytes_out: u64,
    started: Instant,
    auditor: Auditor,
}

pub fn wrap(
    resp: Response<Body>,
    mut record: AuditRecord,
    started: Instant,
    auditor: Auditor,
) -> Response<Body> {
    record.http_status = Some(resp.status().as_u16());
    let (parts, inner) = resp.into_parts();
    let body = Audited {
        inner,
        record: Some(record),
        bytes_out: 0,
        started,
        auditor,
    };
    Response::from_parts(parts, UnsyncBoxBody::new(body))
}

impl Audited {
    fn finish(&mut self, failed: bool) {
        if let Some(mut record) = self.record.take() {
            record.bytes_out = Some(self.bytes_out);
            record.latency_us = Some(self.started.elapsed().as_micros() as u64);
            if failed && record.outcome == "ok" {
                record.outcome = "stream_error".into();
            }
            for line in record.into_lines() {
                self.auditor.record(line);
            }
        }
    }
}

impl HttpBody for Audited {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(true),
            Poll::Ready(None) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        // Dropped before its end: the client went away mid-response.
        let cut_short = !self.inner.is_end_stream();
        if cut_short {
            if let Some(r) = self.record.as_mut() {
                if r.outcome == "ok" {
                    r.outcome = "client_gone".into();
                }
            }
        }
        self.finish(false);
    }
}
