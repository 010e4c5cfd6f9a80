//! One client request from arrival to answer: authenticate and read the body (within the
//! limits), then hand it to the endpoint its path names; every answer gets its audit record.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use underpass_mcp::jsonrpc::code;

use crate::app::App;
use crate::auth::PROTECTED_RESOURCE_WELL_KNOWN;
use crate::federation::endpoint;
use crate::http::audited::{audited, refuse_unaudited, request_record, PendingRecord};
use crate::http::body::Body;
use crate::http::conn::ConnInfo;
use crate::http::headers::{MAX_HEADER_FIELDS, SESSION_HEADER};
use crate::http::respond::error_response;
use crate::http::router::{route, Route};
use crate::http::trace::RequestTrace;
use crate::http::well_known::protected_resource_metadata;
use crate::mcp::{legacy_sse, precheck, streamable};

/// Answers one client request (never fails: every error is an answer).
pub async fn handle(
    app: Arc<App>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    // Authenticate from the headers, then read the (bounded) body before any other
    // decision: answering early and leaving it unread makes HTTP/2 reset the stream, which
    // some clients report as a transport error. Refusals drain the body without keeping it.
    let (mut parts, mut body) = req.into_parts();
    // Every answer gets an audit record, refusals included; a request whose client hangs up
    // before there is an answer gets one when this future is dropped.
    let trace = RequestTrace::of(&parts.headers);
    let record = request_record(&conn, &parts, &trace);
    let mut audit = PendingRecord::new(&app, record, trace, started);
    if parts.headers.len() > MAX_HEADER_FIELDS {
        let resp = error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code::INVALID_REQUEST,
            &format!("more than {MAX_HEADER_FIELDS} header fields"),
        );
        precheck::drain(&mut body).await;
        return Ok(audited(resp, audit));
    }
    let held = match precheck::before_body(&app, &conn, &mut parts, &mut body, &mut audit).await {
        Ok(held) => held,
        Err(refusal) => return Ok(audited(refusal, audit)),
    };
    let body = if precheck::reads_body(&parts) {
        match precheck::read_body(&app, &mut body).await {
            Ok(body) => body,
            Err(refusal) => return Ok(held.attach(audited(refusal, audit))),
        }
    } else {
        precheck::drain(&mut body).await;
        Bytes::new()
    };
    audit.bytes_in = Some(body.len() as u64);
    if let Some(rest) = parts.uri.path().strip_prefix(PROTECTED_RESOURCE_WELL_KNOWN) {
        let resp = protected_resource_metadata(&app, &parts, rest);
        return Ok(audited(resp, audit));
    }
    let resp = match route(parts.uri.path()) {
        Route::Service(service) => {
            audit.session = parts
                .headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match refuse_unaudited(&app, &mut audit) {
                Some(refusal) => refusal,
                None if app.config.bridges_eras(service) => {
                    let target = endpoint::Target::Bridged(service);
                    endpoint::serve(&app, &conn, target, &parts, body, &mut audit).await
                }
                None => streamable::serve(&app, &conn, service, &parts, body, &mut audit).await,
            }
        }
        Route::LegacySse(service) => match refuse_unaudited(&app, &mut audit) {
            Some(refusal) => refusal,
            None => match parts.method {
                Method::GET => legacy_sse::open(&app, &conn, service, &parts, &mut audit).await,
                Method::POST => {
                    legacy_sse::post(&app, &conn, service, &parts, body, &mut audit).await
                }
                _ => error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    code::INVALID_REQUEST,
                    "the 2024-11-05 SSE endpoint takes GET and POST",
                ),
            },
        },
        Route::Federated => match refuse_unaudited(&app, &mut audit) {
            Some(refusal) => refusal,
            None => {
                let target = endpoint::Target::Federated;
                endpoint::serve(&app, &conn, target, &parts, body, &mut audit).await
            }
        },
        Route::View(view) => match refuse_unaudited(&app, &mut audit) {
            Some(refusal) => refusal,
            None => {
                let target = endpoint::Target::View(view);
                endpoint::serve(&app, &conn, target, &parts, body, &mut audit).await
            }
        },
        Route::NotFound => error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "no such endpoint; MCP services are served at /mcp/{service}",
        ),
    };
    Ok(held.attach(audited(resp, audit)))
}
