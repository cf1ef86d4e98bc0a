//! The HTTP source: a log API. `POST <path>` with a JSON object, a JSON array of objects or NDJSON
//! (gzip with `Content-Encoding: gzip`); each object becomes an event (`body`).
//!
//! Replies: 200 `{"accepted": n}` once the events are delivered to Kafka or spooled
//! (`ack = "delivered"`: every event's ack token settled) or once they are in the pipeline's
//! queue (`ack = "accepted"`); 400 naming what is malformed; 401 without the bearer token; 413
//! over `max_body_bytes`; 429 with `Retry-After` over a client's rate limit, or when the memory
//! budget and queue stay full for `queue_wait_ms` (backpressure); 503 when delivery takes longer
//! than `ack_timeout_secs` or the agent is stopping. Every reply is counted by status.

pub mod body;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use crate::ack::Countdown;
use crate::config::{HttpAck, HttpSourceSettings};
use crate::memory::{Batch, MemoryBudget, charge_for};
use crate::metrics::HttpSourceMetrics;
use crate::source::file::SourceControl;

/// How often clients that have not been rate-limited recently are dropped from the limiter.
const LIMITER_UPKEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// A bound HTTP source, ready to run.
pub struct HttpSource {
    listener: tokio::net::TcpListener,
    state: Arc<Shared>,
}

struct Shared {
    settings: HttpSourceSettings,
    tx: mpsc::Sender<Batch>,
    memory: MemoryBudget,
    metrics: HttpSourceMetrics,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// `max_concurrent_requests` permits: bodies in memory at once.
    requests: Semaphore,
    /// Cancelled when the agent stops waiting for deliveries: requests still waiting get 503.
    /// Not at `stop`: while the producer runs (a reload, or the flush at shutdown) a request
    /// whose events are delivered still gets its 200, so its client sends nothing twice.
    finish: tokio_util::sync::CancellationToken,
}

impl HttpSource {
    /// Binds the source's address (an error stops the agent at start).
    pub async fn bind(
        id: &str,
        settings: HttpSourceSettings,
        tx: mpsc::Sender<Batch>,
        memory: MemoryBudget,
        control: &SourceControl,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(settings.address).await?;
        let limiter = settings.rate_limit.map(|(rate, burst)| {
            let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let requests = Semaphore::new(settings.max_concurrent_requests);
        Ok(Self {
            listener,
            state: Arc::new(Shared {
                settings,
                tx,
                memory,
                metrics: HttpSourceMetrics::new(id),
                limiter,
                requests,
                finish: control.finish.clone(),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `control.stop`: the port is released at once, requests under way are
    /// answered (their delivery waited for until `control.finish`), then it returns. Nothing to
    /// checkpoint: a client whose request was not answered 200 sends it again.
    pub async fn run(self, control: SourceControl) {
        let path = self.state.settings.path.clone();
        let app = Router::new()
            .route(&path, post(ingest))
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&self.state));
        if self.state.limiter.is_some() {
            // Clients not seen for a while are forgotten, so the limiter's memory stays bounded.
            let state = Arc::clone(&self.state);
            let stop = control.stop.clone();
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(LIMITER_UPKEEP) => {}
                    }
                    if let Some(limiter) = &state.limiter {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                }
            });
        }
        let stop = control.stop.clone();
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
        if let Err(error) = served {
            tracing::error!(%error, "HTTP source stopped serving");
        }
    }
}

/// `POST <path>`.
async fn ingest(
    State(state): State<Arc<Shared>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: axum::body::Body,
) -> Response {
    let reply = state.handle(client.ip(), &headers, request).await;
    state.metrics.replied(reply.status.as_u16());
    reply.into_response()
}

/// Whether reading a body stopped at `max_body_bytes` (rather than on a client that went away).
fn too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// A reply, before it becomes a response.
struct Reply {
    status: StatusCode,
    body: serde_json::Value,
    retry_after: Option<u64>,
}

impl Reply {
    fn error(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            body: json!({ "error": message.to_string() }),
            retry_after: None,
        }
    }

    fn retry(status: StatusCode, message: &str, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::error(status, message)
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl Shared {
    async fn handle(
        &self,
        client: IpAddr,
        headers: &HeaderMap,
        request: axum::body::Body,
    ) -> Reply {
        if let Some(token) = &self.settings.auth_token {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given != Some(token.as_str()) {
                return Reply::error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            }
        }
        if let Some(limiter) = &self.limiter
            && let Err(not_until) = limiter.check_key(&client)
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
            return Reply::retry(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded",
                wait.as_secs_f64().ceil() as u64,
            );
        }
        let Ok(_permit) = self.requests.acquire().await else {
            return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "the source is stopping");
        };
        let limit = self.settings.max_body_bytes;
        let bytes = match axum::body::to_bytes(request, limit).await {
            Ok(bytes) => bytes,
            Err(error) if too_large(&error) => {
                return Reply::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    body::BodyError::TooLarge(limit),
                );
            }
            Err(error) => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {error}"),
                );
            }
        };
        self.metrics.bytes_read.increment(bytes.len() as u64);
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let events = body::decode(&bytes, gzip, limit)
            .and_then(|decoded| body::objects(&decoded))
            .and_then(|objects| body::events(objects, &self.settings, chrono::Utc::now()));
        let mut events = match events {
            Ok(events) => events,
            Err(error @ body::BodyError::TooLarge(_)) => {
                return Reply::error(StatusCode::PAYLOAD_TOO_LARGE, error);
            }
            Err(error) => return Reply::error(StatusCode::BAD_REQUEST, error),
        };
        let count = events.len();
        let (countdown, tokens) = Countdown::new(count);
        for (event, token) in events.iter_mut().zip(tokens) {
            event.ack = Some(token);
        }
        // Backpressure: room in the memory budget and the queue, or 429 after `queue_wait`.
        let room = async {
            let charge = self.memory.charge(charge_for(&events)).await;
            self.tx.reserve().await.map(|permit| (charge, permit))
        };
        match tokio::time::timeout(self.settings.queue_wait, room).await {
            Ok(Ok((charge, permit))) => permit.send(Batch { events, charge }),
            Ok(Err(_)) => {
                return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
            }
            Err(_) => {
                return Reply::retry(
                    StatusCode::TOO_MANY_REQUESTS,
                    "the agent is busy (backpressure); retry later",
                    1,
                );
            }
        }
        self.metrics.events_read.increment(count as u64);
        if self.settings.ack == HttpAck::Delivered {
            let delivered = tokio::select! {
                _ = self.finish.cancelled() => false,
                done = tokio::time::timeout(self.settings.ack_timeout, countdown.settled()) => done.is_ok(),
            };
            if !delivered {
                return Reply::retry(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the events were not delivered in time; sending them again may duplicate them",
                    5,
                );
            }
        }
        Reply {
            status: StatusCode::OK,
            body: json!({ "accepted": count }),
            retry_after: None,
        }
    }
}
