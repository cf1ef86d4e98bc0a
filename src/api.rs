//! The HTTP API of the agent and the sinks: Prometheus text on `/metrics`, a JSON health report
//! on `/health` (200 when healthy, 503 when not: readiness and alerting), and `/health/live`
//! (200 while the process serves at all: liveness, which a Kafka outage must not fail, since a
//! restart cannot bring Kafka back and would only interrupt spooling).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// What /health reports: the agent's `Health`, a sink's `SinkHealth`.
pub trait Report: Send + Sync + 'static {
    /// Whether all is well, and the JSON body that says what is and is not.
    fn report(&self) -> (bool, serde_json::Value);
}

#[derive(Clone)]
struct ApiState {
    metrics: PrometheusHandle,
    health: Arc<dyn Report>,
}

/// Binds `address`; returns the bound address (port 0 picks one) and the serving future.
pub async fn bind(
    address: SocketAddr,
    metrics: PrometheusHandle,
    health: Arc<dyn Report>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(report_health))
        .route("/health/live", get(report_live))
        .with_state(ApiState { metrics, health });
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    };
    Ok((bound, serve))
}

async fn render_metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn report_health(State(state): State<ApiState>) -> impl IntoResponse {
    let (healthy, report) = state.health.report();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// The process is alive: its runtime serves requests. Nothing else is checked on purpose.
async fn report_live() -> impl IntoResponse {
    Json(serde_json::json!({ "live": true }))
}
