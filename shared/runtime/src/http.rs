//! The worker's HTTP listener: Prometheus metrics, liveness and readiness.
//!
//! - `GET /metrics`: the Prometheus text exposition of every metric the worker records.
//! - `GET /healthz`: liveness, `200 ok` for as long as the process serves requests. It checks
//!   nothing else on purpose: a worker waiting for a broker is not helped by being restarted.
//! - `GET /readyz`: readiness, `200 ready` once the assigned partitions are restored and
//!   processing and the schema registry is reachable; `503` with what is missing otherwise,
//!   and from the moment a drain starts, so the pod leaves the service before it stops.
//!
//! The engine owns the state behind `/readyz` through a [`Health`] it flips; this module only
//! reads it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Telemetry;

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// How often histogram samples are folded into their buckets when nobody scrapes: without it a
/// worker that is never scraped keeps every sample in memory.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Shared readiness; the engines flip these, `/readyz` reads them.
///
/// Cloning is cheap and every clone sees the same flags. A worker with several stages (one
/// engine each) gives each its own partitions flag with [`Health::stage`]: it is ready when every
/// stage is.
#[derive(Debug, Clone)]
pub struct Health {
    /// This handle's flag: its engine's assigned partitions are restored and records are being
    /// processed. False while restoring after an assignment, so traffic-based checks do not
    /// count a restoring worker.
    partitions_ready: Arc<AtomicBool>,
    /// Every stage's flag, this handle's included.
    stages: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>>,
    /// The last call to the schema registry succeeded; without it no event can be decoded.
    registry_reachable: Arc<AtomicBool>,
    /// False while the start-up probe cannot reach the Kafka cluster (or is refused by it);
    /// true before the first probe and after a successful one.
    kafka_reachable: Arc<AtomicBool>,
    /// A drain has started (SIGTERM): never ready again, so the pod is taken out of rotation.
    draining: Arc<AtomicBool>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Not ready: partitions not yet restored, registry not yet reached, not draining.
    pub fn new() -> Self {
        let partitions_ready = Arc::new(AtomicBool::new(false));
        Self {
            stages: Arc::new(std::sync::Mutex::new(vec![Arc::clone(&partitions_ready)])),
            partitions_ready,
            registry_reachable: Arc::default(),
            kafka_reachable: Arc::new(AtomicBool::new(true)),
            draining: Arc::default(),
        }
    }

    /// A handle for one more stage, sharing everything but the partitions flag, which starts
    /// false and must also be true for the worker to be ready.
    pub fn stage(&self) -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        self.stages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::clone(&flag));
        Self {
            partitions_ready: flag,
            ..self.clone()
        }
    }

    /// Assigned partitions restored and processing (`true`), or restoring (`false`).
    pub fn set_partitions_ready(&self, ready: bool) {
        self.partitions_ready.store(ready, Ordering::Release);
    }

    /// Whether the schema registry answered the last time it was asked.
    pub fn set_registry_reachable(&self, reachable: bool) {
        self.registry_reachable.store(reachable, Ordering::Release);
    }

    /// Whether the start-up probe reached the Kafka cluster the last time it tried.
    pub fn set_kafka_reachable(&self, reachable: bool) {
        self.kafka_reachable.store(reachable, Ordering::Release);
    }

    /// After SIGTERM: not ready any more, whatever else is true. There is no way back: a
    /// draining worker exits.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// `partitions_ready && registry_reachable && !draining`.
    pub fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// What `/readyz` reports as missing, or `None` when ready. Draining is reported alone:
    /// once it starts nothing else matters.
    fn not_ready_reason(&self) -> Option<String> {
        if self.draining.load(Ordering::Acquire) {
            return Some("not ready: draining".to_owned());
        }
        let mut missing = Vec::new();
        if !self.kafka_reachable.load(Ordering::Acquire) {
            missing.push("Kafka cluster unreachable");
        }
        let all_stages_ready = self
            .stages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .all(|ready| ready.load(Ordering::Acquire));
        if !all_stages_ready {
            missing.push("partitions restoring");
        }
        if !self.registry_reachable.load(Ordering::Acquire) {
            missing.push("schema registry unreachable");
        }
        if missing.is_empty() {
            None
        } else {
            Some(format!("not ready: {}", missing.join(", ")))
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is in use, not local, or not permitted.
    #[error("cannot listen for HTTP on {addr} (--http-addr, WORKER_HTTP_ADDR): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The socket was bound but its address could not be read back.
    #[error("cannot read the bound HTTP address for {addr}: {source}")]
    LocalAddr {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// What every request handler reads.
#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Health,
    /// Records `worker_ready` at every scrape, labelled with the process's worker name.
    telemetry: Telemetry,
    /// The process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
    /// `process_start_time_seconds`, ...), read at every scrape.
    process: Arc<metrics_process::Collector>,
}

/// Binds `addr` and serves until `shutdown` is cancelled; returns the bound address (useful with
/// port 0) and the server task, which ends once in-flight requests have been answered.
///
/// Binding happens before this returns, so a taken port fails startup instead of a task later.
/// The task also runs the Prometheus recorder's upkeep, which nothing else does for a recorder
/// built without the exporter's own listener.
pub async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    health: Health,
    telemetry: Telemetry,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| HttpError::LocalAddr { addr, source })?;
    let process = metrics_process::Collector::default();
    process.describe();
    let state = AppState {
        metrics: metrics.clone(),
        health,
        telemetry,
        process: Arc::new(process),
    };
    let task = tokio::spawn(async move {
        let upkeep = run_upkeep(metrics, shutdown.clone());
        let server = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let (served, ()) = tokio::join!(server.into_future(), upkeep);
        match served {
            Ok(()) => tracing::debug!(addr = %bound, "http listener stopped"),
            Err(error) => tracing::error!(addr = %bound, %error, "http listener failed"),
        }
    });
    // The bound address, which differs from the configured one with port 0 (the tests read it
    // from this line).
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz on http://{bound}");
    Ok((bound, task))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn run_upkeep(metrics: PrometheusHandle, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => metrics.run_upkeep(),
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.telemetry.ready(state.health.is_ready());
    state.process.collect();
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.health.not_ready_reason() {
        None => (StatusCode::OK, "ready").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A response as the tests look at it.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        content_type: Option<String>,
        body: String,
    }

    /// A plain HTTP/1.1 GET over a TCP stream: enough for three fixed routes, and needs no HTTP
    /// client crate.
    async fn get(addr: SocketAddr, path: &str) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects to the listener");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("sends the request");
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .await
            .expect("reads the response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("response has a head");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("status line has a code");
        let content_type = lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        });
        Reply {
            status,
            content_type,
            body: body.to_owned(),
        }
    }

    async fn start(health: Health) -> (SocketAddr, tokio::task::JoinHandle<()>, CancellationToken) {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("worker_test_requests_total", "worker" => "test").increment(3);
        });
        let shutdown = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().expect("valid address"),
            handle,
            health,
            Telemetry::new("test"),
            shutdown.clone(),
        )
        .await
        .expect("binds an ephemeral port");
        (addr, task, shutdown)
    }

    #[tokio::test]
    async fn metrics_renders_the_recorder() {
        let (addr, task, shutdown) = start(Health::new()).await;
        assert_ne!(addr.port(), 0, "the bound port is returned");

        let reply = get(addr, "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type.as_deref(), Some(METRICS_CONTENT_TYPE));
        assert!(
            reply
                .body
                .contains("worker_test_requests_total{worker=\"test\"} 3"),
            "{}",
            reply.body
        );

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("server stops after cancellation")
            .expect("server task does not panic");
    }

    #[tokio::test]
    async fn healthz_is_ok_while_serving_even_when_not_ready() {
        let health = Health::new();
        health.set_draining();
        let (addr, _task, shutdown) = start(health).await;
        let reply = get(addr, "/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
        shutdown.cancel();
    }

    #[test]
    fn a_worker_with_stages_is_ready_when_every_stage_is() {
        let health = Health::new();
        health.set_registry_reachable(true);
        health.set_partitions_ready(true);
        let orders = health.stage();
        let stock = health.stage();
        assert!(!health.is_ready());
        orders.set_partitions_ready(true);
        assert!(!health.is_ready());
        stock.set_partitions_ready(true);
        assert!(health.is_ready() && orders.is_ready() && stock.is_ready());
        stock.set_partitions_ready(false);
        assert!(!orders.is_ready());
    }

    #[tokio::test]
    async fn readyz_follows_the_health_flags() {
        let health = Health::new();
        let (addr, _task, shutdown) = start(health.clone()).await;

        let reply = get(addr, "/readyz").await;
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.body,
            "not ready: partitions restoring, schema registry unreachable"
        );

        health.set_registry_reachable(true);
        let reply = get(addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: partitions restoring")
        );

        health.set_partitions_ready(true);
        let reply = get(addr, "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready"));
        assert!(health.is_ready());

        health.set_registry_reachable(false);
        let reply = get(addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: schema registry unreachable")
        );

        health.set_kafka_reachable(false);
        let reply = get(addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (
                503,
                "not ready: Kafka cluster unreachable, schema registry unreachable"
            )
        );

        health.set_kafka_reachable(true);
        health.set_registry_reachable(true);
        health.set_draining();
        let reply = get(addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: draining")
        );
        assert!(!health.is_ready());
        shutdown.cancel();
    }

    #[tokio::test]
    async fn unknown_path_is_not_found() {
        let (addr, _task, shutdown) = start(Health::new()).await;
        assert_eq!(get(addr, "/nope").await.status, 404);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn taken_port_is_a_bind_error() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds an ephemeral port");
        let addr = taken.local_addr().expect("has an address");
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let result = serve(
            addr,
            handle,
            Health::new(),
            Telemetry::new("test"),
            CancellationToken::new(),
        )
        .await;
        match result {
            Err(HttpError::Bind { addr: reported, .. }) => assert_eq!(reported, addr),
            other => panic!("expected a bind error, got {other:?}"),
        }
    }

    #[test]
    fn health_starts_not_ready() {
        let health = Health::new();
        assert!(!health.is_ready());
        health.set_partitions_ready(true);
        health.set_registry_reachable(true);
        assert!(health.is_ready());
        let clone = health.clone();
        clone.set_partitions_ready(false);
        assert!(!health.is_ready(), "clones share their flags");
    }
}
