//! The webhook channel: POSTs each message as JSON to a URL, with the notification id as the
//! `Idempotency-Key` header, so the receiver (a mail service, a CRM) can drop the repeats that
//! retries and replays send.
//!
//! Each attempt has a timeout. Timeouts, connection errors, 5xx answers, and the two 4xx
//! answers that mean "try again later" (408 Request Timeout, 429 Too Many Requests) are retried
//! with exponential back-off up to a bounded number of attempts; any other 4xx is a permanent
//! refusal and is not retried (the same request would be refused again). 2xx is delivered.
//!
//! Uses reqwest's blocking client: the handler runs on the runtime's processing thread, a plain
//! OS thread, so blocking there is expected (and bounded: see `config`'s start-up check).

use std::time::Duration;

use rand::SeedableRng as _;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retail_events::notification::NotificationChannel;
use retail_runtime::retry::Backoff;

use super::{Channel, ChannelError, Delivery, DeliveryError};
use crate::message::Message;

/// The header carrying the notification id.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How to reach the webhook.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to POST.
    pub url: reqwest::Url,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// Attempts and the waits between them.
    pub backoff: Backoff,
}

impl WebhookSettings {
    /// The longest a delivery can block the processing thread: every attempt timing out, and
    /// the longest waits between them.
    pub fn worst_case(&self) -> Duration {
        self.timeout
            .saturating_mul(self.backoff.max_attempts)
            .saturating_add(self.backoff.worst_case_total())
    }
}

/// POSTs messages to a webhook.
#[derive(Debug)]
pub struct WebhookChannel {
    /// The HTTP client (a connection pool).
    client: Client,
    /// Where to POST.
    url: reqwest::Url,
    /// Attempts and the waits between them.
    backoff: Backoff,
}

/// What one attempt ran into, when it did not deliver.
enum AttemptFailure {
    /// Worth another attempt.
    Transient(String),
    /// Another attempt would fail the same way.
    Permanent(DeliveryError),
}

impl WebhookChannel {
    /// A channel posting to `settings.url`.
    pub fn new(settings: WebhookSettings) -> Result<Self, ChannelError> {
        let timeout = settings.timeout;
        // reqwest's blocking client starts its own runtime thread, and refuses to be built on a
        // thread inside an async runtime (the worker's `main` is one). A short-lived plain
        // thread can build it from anywhere.
        let built = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    Client::builder()
                        .timeout(timeout)
                        .connect_timeout(timeout)
                        .build()
                })
                .join()
        });
        let client = built
            .map_err(|_| ChannelError::Client("building the client panicked".to_owned()))?
            .map_err(|error| ChannelError::Client(error.to_string()))?;
        Ok(Self {
            client,
            url: settings.url,
            backoff: settings.backoff,
        })
    }

    /// One POST.
    fn attempt(&self, message: &Message, body: &[u8]) -> Result<(), AttemptFailure> {
        let key = HeaderValue::from_str(&message.notification_id).map_err(|error| {
            AttemptFailure::Permanent(DeliveryError::Request(format!(
                "the notification id is not a valid header value: {error}"
            )))
        })?;
        let response = self
            .client
            .post(self.url.clone())
            .header(IDEMPOTENCY_KEY, key)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_vec())
            .send();
        match response {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else if is_transient(status) {
                    Err(AttemptFailure::Transient(format!("HTTP {status}")))
                } else {
                    Err(AttemptFailure::Permanent(DeliveryError::Refused {
                        status: status.as_u16(),
                    }))
                }
            }
            // Never show the URL: it may carry a token.
            Err(error) if error.is_builder() || error.is_redirect() => Err(
                AttemptFailure::Permanent(DeliveryError::Request(error.without_url().to_string())),
            ),
            Err(error) => Err(AttemptFailure::Transient(describe(error))),
        }
    }
}

impl Channel for WebhookChannel {
    fn kind(&self) -> NotificationChannel {
        NotificationChannel::Webhook
    }

    fn deliver(&self, message: &Message) -> Delivery {
        let body = match serde_json::to_vec(message) {
            Ok(body) => body,
            Err(error) => return Delivery::failed(0, DeliveryError::Encode(error.to_string())),
        };
        // Only the waits are random (jitter, so workers that failed together do not retry in
        // step); what is sent, and the events emitted, are not.
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.attempt(message, &body) {
                Ok(()) => return Delivery::delivered(attempts),
                Err(AttemptFailure::Permanent(error)) => return Delivery::failed(attempts, error),
                Err(AttemptFailure::Transient(last)) => last,
            };
            let Some(wait) = self.backoff.delay(attempts, &mut rng) else {
                return Delivery::failed(attempts, DeliveryError::Exhausted { attempts, last });
            };
            tracing::debug!(
                notification_id = %message.notification_id,
                attempts,
                error = %last,
                wait_ms = wait.as_millis(),
                "webhook attempt failed; retrying"
            );
            std::thread::sleep(wait);
        }
    }
}

/// Answers that may pass on another attempt: server errors, and the client errors that say
/// "later".
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// A transport error in a few words, without the URL: what kind of failure, and the innermost
/// cause, which names the real problem ("Connection refused", ...).
fn describe(error: reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut cause: &dyn std::error::Error = &error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{what}: {cause}")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    use retail_events::notification::NotificationKind;

    use super::*;
    use crate::message::Recipient;

    /// What the test server does with one connection.
    #[derive(Debug, Clone, Copy)]
    enum Reply {
        /// Answer with this status.
        Status(u16),
        /// Read the request, then say nothing for this long.
        Silence(Duration),
    }

    /// One request the server received.
    #[derive(Debug)]
    struct Received {
        /// Header lines, names lower-cased.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }
    }

    /// A one-connection-per-reply HTTP server on a free local port; sends what it received.
    fn serve(replies: Vec<Reply>) -> (SocketAddr, mpsc::Receiver<Received>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let (sender, receiver) = mpsc::channel();
        let server = std::thread::spawn(move || {
            // One thread per connection, so a silent reply does not hold up the next one.
            let mut connections = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().expect("accept");
                let sender = sender.clone();
                connections.push(std::thread::spawn(move || answer(stream, reply, &sender)));
            }
            for connection in connections {
                connection.join().expect("connection thread");
            }
        });
        (address, receiver, server)
    }

    /// Reads one request from `stream`, reports it, and replies.
    fn answer(stream: std::net::TcpStream, reply: Reply, sender: &mpsc::Sender<Received>) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("request line");
        assert!(
            request_line.starts_with("POST /hooks/notify?token=secret "),
            "{request_line}"
        );
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("name: value");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| value.parse().expect("a length"))
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        sender.send(Received { headers, body }).expect("test alive");
        let mut stream = stream;
        match reply {
            Reply::Status(status) => {
                // The client may have given up already; that is the test's business.
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
            Reply::Silence(duration) => std::thread::sleep(duration),
        }
    }

    fn channel(address: SocketAddr, max_attempts: u32, timeout: Duration) -> WebhookChannel {
        WebhookChannel::new(WebhookSettings {
            url: format!("http://{address}/hooks/notify?token=secret")
                .parse()
                .expect("url"),
            timeout,
            backoff: Backoff {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(20),
                max_attempts,
            },
        })
        .expect("client")
    }

    fn message() -> Message {
        Message {
            notification_id: "0b8e7d52-7f3c-5f0e-9a4b-3c2d1e0f9a8b".to_owned(),
            kind: NotificationKind::OrderConfirmed,
            order_id: "order-1".to_owned(),
            customer_id: "customer-1".to_owned(),
            recipient: Recipient {
                name: "Anna".to_owned(),
                email: "anna@example.com".to_owned(),
            },
            subject: "Your order order-1 is confirmed".to_owned(),
            body: "Hi Anna\n".to_owned(),
        }
    }

    #[test]
    fn a_server_error_is_retried_with_the_same_idempotency_key_and_body() {
        let (address, received, server) = serve(vec![Reply::Status(500), Reply::Status(200)]);
        let delivery = channel(address, 3, Duration::from_secs(5)).deliver(&message());
        assert_eq!(delivery.attempts, 2);
        assert!(delivery.result.is_ok(), "{:?}", delivery.result);
        server.join().expect("server");
        let requests: Vec<Received> = received.try_iter().collect();
        assert_eq!(requests.len(), 2);
        for request in &requests {
            assert_eq!(
                request.header("idempotency-key"),
                Some("0b8e7d52-7f3c-5f0e-9a4b-3c2d1e0f9a8b")
            );
            assert_eq!(request.header("content-type"), Some("application/json"));
            let json: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
            assert_eq!(
                json["notification_id"],
                "0b8e7d52-7f3c-5f0e-9a4b-3c2d1e0f9a8b"
            );
            assert_eq!(json["kind"], "ORDER_CONFIRMED");
            assert_eq!(json["subject"], "Your order order-1 is confirmed");
        }
        assert_eq!(requests[0].body, requests[1].body);
    }

    #[test]
    fn a_client_error_is_not_retried() {
        let (address, received, server) = serve(vec![Reply::Status(400)]);
        let delivery = channel(address, 3, Duration::from_secs(5)).deliver(&message());
        assert_eq!(delivery.attempts, 1);
        assert!(
            matches!(delivery.result, Err(DeliveryError::Refused { status: 400 })),
            "{:?}",
            delivery.result
        );
        server.join().expect("server");
        assert_eq!(received.try_iter().count(), 1);
    }

    #[test]
    fn too_many_requests_is_retried() {
        let (address, _received, server) = serve(vec![Reply::Status(429), Reply::Status(204)]);
        let delivery = channel(address, 3, Duration::from_secs(5)).deliver(&message());
        assert_eq!(delivery.attempts, 2);
        assert!(delivery.result.is_ok(), "{:?}", delivery.result);
        server.join().expect("server");
    }

    #[test]
    fn a_timeout_is_retried() {
        let (address, received, server) = serve(vec![
            Reply::Silence(Duration::from_millis(600)),
            Reply::Status(200),
        ]);
        let delivery = channel(address, 3, Duration::from_millis(200)).deliver(&message());
        assert_eq!(delivery.attempts, 2);
        assert!(delivery.result.is_ok(), "{:?}", delivery.result);
        server.join().expect("server");
        assert_eq!(received.try_iter().count(), 2);
    }

    #[test]
    fn server_errors_until_the_attempts_run_out_give_up_with_the_last_error() {
        let (address, _received, server) = serve(vec![Reply::Status(503); 3]);
        let delivery = channel(address, 3, Duration::from_secs(5)).deliver(&message());
        assert_eq!(delivery.attempts, 3);
        match &delivery.result {
            Err(error @ DeliveryError::Exhausted { attempts: 3, last }) => {
                assert!(last.contains("503"), "{last}");
                assert!(!error.to_string().contains("secret"), "{error}");
            }
            other => panic!("exhausted expected, got {other:?}"),
        }
        server.join().expect("server");
    }

    #[test]
    fn connection_errors_are_retried_and_never_show_the_url() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let delivery = channel(address, 2, Duration::from_secs(2)).deliver(&message());
        assert_eq!(delivery.attempts, 2);
        match &delivery.result {
            Err(error @ DeliveryError::Exhausted { attempts: 2, last }) => {
                assert!(last.starts_with("cannot connect"), "{last}");
                assert!(!error.to_string().contains("secret"), "{error}");
                assert!(!error.to_string().contains("127.0.0.1"), "{error}");
            }
            other => panic!("exhausted expected, got {other:?}"),
        }
    }

    #[test]
    fn the_worst_case_adds_every_timeout_and_wait() {
        let settings = WebhookSettings {
            url: "http://localhost/".parse().expect("url"),
            timeout: Duration::from_secs(5),
            backoff: Backoff {
                initial: Duration::from_millis(250),
                max: Duration::from_secs(2),
                max_attempts: 3,
            },
        };
        assert_eq!(settings.worst_case(), Duration::from_millis(15_750));
    }
}
