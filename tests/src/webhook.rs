//! A webhook receiver for the notification worker's webhook channel: an HTTP server on a free
//! local port that verifies each delivery's Standard Webhooks signature and records it by
//! notification id, and that can be switched into an outage, in which it answers half the
//! requests with 503 and lets the other half wait past the sender's timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// What the receiver saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// Deliveries answered with 200, by notification id (`webhook-id`): how many times each.
    pub accepted: BTreeMap<String, u32>,
    /// Requests answered with 503 or left waiting during outages.
    pub failed: u64,
    /// Requests whose signature did not verify (answered 401).
    pub bad_signatures: u64,
}

/// The receiver's shared state.
struct Inner {
    /// The signature checker.
    verifier: standardwebhooks::Webhook,
    /// Whether the receiver is in an outage.
    down: AtomicBool,
    /// How long an outage's silent answers wait (longer than the sender's timeout).
    hang: Duration,
    /// Requests seen during outages, to alternate 503 and silence.
    outage_requests: AtomicU64,
    /// What it saw.
    received: Mutex<Received>,
}

/// A running receiver; stops when dropped.
pub struct WebhookReceiver {
    /// Its address.
    addr: SocketAddr,
    /// The shared state.
    inner: Arc<Inner>,
    /// The server task.
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// A test signing secret, as Standard Webhooks writes them (`whsec_` and base64 of 32 bytes).
    pub const SECRET: &'static str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// Starts a receiver on a free local port, on the current tokio runtime. `hang` is how long
    /// an outage's silent answers wait.
    pub async fn start(hang: Duration) -> Self {
        let inner = Arc::new(Inner {
            verifier: standardwebhooks::Webhook::new(Self::SECRET).expect("a valid secret"),
            down: AtomicBool::new(false),
            hang,
            outage_requests: AtomicU64::new(0),
            received: Mutex::new(Received::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("its address");
        let app = axum::Router::new()
            .route("/notifications", post(receive))
            .with_state(Arc::clone(&inner));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the receiver runs");
        });
        Self {
            addr,
            inner,
            server,
        }
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("http://{}/notifications", self.addr)
    }

    /// Starts (`true`) or ends (`false`) an outage.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// What it saw so far.
    pub fn received(&self) -> Received {
        self.inner
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One delivery.
async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if inner.down.load(Ordering::SeqCst) {
        let request = inner.outage_requests.fetch_add(1, Ordering::SeqCst);
        if request % 2 == 1 {
            tokio::time::sleep(inner.hang).await;
        }
        inner
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut received = inner
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if inner.verifier.verify(&body, &headers).is_err() {
        received.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Some(id) = headers
        .get(standardwebhooks::HEADER_WEBHOOK_ID)
        .and_then(|id| id.to_str().ok())
    else {
        received.bad_signatures += 1;
        return StatusCode::BAD_REQUEST;
    };
    *received.accepted.entry(id.to_owned()).or_default() += 1;
    StatusCode::OK
}
