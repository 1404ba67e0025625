//! The webhook channel: POSTs each message as JSON to a URL, with the notification id as the
//! `Idempotency-Key` header, so the receiver (a mail service, a CRM) can drop the repeats that
//! retries and replays send.
//!
//! Deliveries are signed the [Standard Webhooks](https://www.standardwebhooks.com/) way: the
//! `webhook-id` header carries the notification id, `webhook-timestamp` the attempt's Unix time
//! in seconds, and `webhook-signature` `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
//! under the shared secret, so a receiver authenticates each request (and rejects replays of
//! old ones) with any of that spec's libraries. HTTPS certificates are verified against the
//! system's roots, plus a private CA if one is given; there is no switch to turn that off.
//!
//! Each attempt has a timeout. Timeouts, connection errors, 5xx answers, and the two 4xx
//! answers that mean "try again later" (408 Request Timeout, 429 Too Many Requests) are retried
//! with exponential back-off up to a bounded number of attempts; any other 4xx is a permanent
//! refusal and is not retried (the same request would be refused again). 2xx is delivered.
//!
//! Uses reqwest's blocking client: the handler runs on the runtime's processing thread, a plain
//! OS thread, so blocking there is expected (and bounded: see `config`'s start-up check).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The shared secret webhook deliveries are signed with. Never shown: `Debug` prints `***`.
#[derive(Clone)]
pub struct SigningSecret(Arc<standardwebhooks::Webhook>);

impl SigningSecret {
    /// Shortest secret accepted, in bytes once decoded (the spec asks for 24 to 64).
    pub const MIN_BYTES: usize = 24;

    /// Parses a secret as Standard Webhooks writes them: `whsec_` and the base64 of the key
    /// bytes (the prefix is optional). The error never repeats the secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let text = text.trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| format!("not whsec_ followed by base64 ({error})"))?;
        if key.len() < Self::MIN_BYTES {
            return Err(format!(
                "{} bytes once decoded; at least {} are needed",
                key.len(),
                Self::MIN_BYTES
            ));
        }
        let webhook = standardwebhooks::Webhook::from_bytes(key)
            .map_err(|error| format!("rejected by the signer: {error}"))?;
        Ok(Self(Arc::new(webhook)))
    }

    /// The `webhook-signature` value for one attempt.
    fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
        self.0
            .sign(id, timestamp, body)
            .map_err(|error| error.to_string())
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

/// How to reach the webhook.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to POST.
    pub url: reqwest::Url,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// Attempts and the waits between them.
    pub backoff: Backoff,
    /// The secret each delivery is signed with; `None` sends unsigned requests (only when the
    /// operator asked for that explicitly).
    pub signing: Option<SigningSecret>,
    /// A PEM file of CA certificates trusted for HTTPS in addition to the system's roots, for a
    /// receiver behind a private CA.
    pub ca_file: Option<PathBuf>,
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
    /// Signs each attempt, if set.
    signing: Option<SigningSecret>,
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
        let extra_roots = match &settings.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|error| {
                    ChannelError::Client(format!(
                        "cannot read the webhook CA file {} (--webhook-ca-file, NOTIFICATION_WEBHOOK_CA_FILE): {error}",
                        path.display()
                    ))
                })?;
                let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                    ChannelError::Client(format!(
                        "the webhook CA file {} (--webhook-ca-file, NOTIFICATION_WEBHOOK_CA_FILE) does not parse as PEM certificates: {error}",
                        path.display()
                    ))
                })?;
                if roots.is_empty() {
                    return Err(ChannelError::Client(format!(
                        "the webhook CA file {} (--webhook-ca-file, NOTIFICATION_WEBHOOK_CA_FILE) holds no PEM certificates",
                        path.display()
                    )));
                }
                roots
            }
        };
        // reqwest's blocking client starts its own runtime thread, and refuses to be built on a
        // thread inside an async runtime (the worker's `main` is one). A short-lived plain
        // thread can build it from anywhere.
        let built = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    extra_roots
                        .into_iter()
                        .fold(Client::builder(), |builder, root| {
                            builder.add_root_certificate(root)
                        })
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
            signing: settings.signing,
        })
    }

    /// One POST.
    fn attempt(&self, message: &Message, body: &[u8]) -> Result<(), AttemptFailure> {
        let key = HeaderValue::from_str(&message.notification_id).map_err(|error| {
            AttemptFailure::Permanent(DeliveryError::Request(format!(
                "the notification id is not a valid header value: {error}"
            )))
        })?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(IDEMPOTENCY_KEY, key.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(signing) = &self.signing {
            // Each attempt is signed afresh: receivers reject timestamps older than a few
            // minutes, and a retry can come later than that.
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
                });
            let signature = signing
                .sign(&message.notification_id, timestamp, body)
                .and_then(|signature| {
                    HeaderValue::from_str(&signature).map_err(|error| error.to_string())
                })
                .map_err(|reason| {
                    AttemptFailure::Permanent(DeliveryError::Request(format!(
                        "cannot sign the message: {reason}"
                    )))
                })?;
            request = request
                .header(standardwebhooks::HEADER_WEBHOOK_ID, key)
                .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp)
                .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature);
        }
        let response = request.body(body.to_vec()).send();
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

    fn settings(address: SocketAddr, max_attempts: u32, timeout: Duration) -> WebhookSettings {
        WebhookSettings {
            url: format!("http://{address}/hooks/notify?token=secret")
                .parse()
                .expect("url"),
            timeout,
            backoff: Backoff {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(20),
                max_attempts,
            },
            signing: None,
            ca_file: None,
        }
    }

    fn channel(address: SocketAddr, max_attempts: u32, timeout: Duration) -> WebhookChannel {
        WebhookChannel::new(settings(address, max_attempts, timeout)).expect("client")
    }

    /// A Standard Webhooks secret: `whsec_` and the base64 of 32 bytes.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// What a receiver does: verify the request with the spec's own verifier.
    fn verify(secret: &str, request: &Received) -> Result<(), standardwebhooks::WebhookError> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        standardwebhooks::Webhook::new(secret)
            .expect("secret")
            .verify(&request.body, &headers)
    }

    #[test]
    fn signed_deliveries_verify_with_the_standard_webhooks_verifier_and_only_with_the_secret() {
        let (address, received, server) = serve(vec![Reply::Status(503), Reply::Status(200)]);
        let mut settings = settings(address, 3, Duration::from_secs(5));
        settings.signing = Some(SigningSecret::parse(SECRET).expect("a valid secret"));
        let delivery = WebhookChannel::new(settings)
            .expect("client")
            .deliver(&message());
        assert!(delivery.result.is_ok(), "{:?}", delivery.result);
        server.join().expect("server");
        let requests: Vec<Received> = received.try_iter().collect();
        assert_eq!(requests.len(), 2, "the retry is signed too");
        for request in &requests {
            assert_eq!(
                request.header("webhook-id"),
                Some("0b8e7d52-7f3c-5f0e-9a4b-3c2d1e0f9a8b")
            );
            assert!(
                request
                    .header("webhook-signature")
                    .is_some_and(|signature| signature.starts_with("v1,")),
                "{:?}",
                request.headers
            );
            verify(SECRET, request).expect("the receiver accepts it");
            let other = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
            assert!(
                matches!(
                    verify(other, request),
                    Err(standardwebhooks::WebhookError::InvalidSignature)
                ),
                "another secret must not verify"
            );
            let mut tampered = Received {
                headers: request.headers.clone(),
                body: request.body.clone(),
            };
            tampered.body.extend_from_slice(b" ");
            assert!(
                verify(SECRET, &tampered).is_err(),
                "a changed body must not verify"
            );
        }
    }

    #[test]
    fn unsigned_deliveries_carry_no_signature_headers() {
        let (address, received, server) = serve(vec![Reply::Status(200)]);
        let delivery = channel(address, 1, Duration::from_secs(5)).deliver(&message());
        assert!(delivery.result.is_ok(), "{:?}", delivery.result);
        server.join().expect("server");
        let request = received.try_iter().next().expect("one request");
        assert_eq!(request.header("webhook-signature"), None);
        assert_eq!(request.header("webhook-id"), None);
    }

    #[test]
    fn secrets_are_parsed_strictly_and_never_shown() {
        let secret = SigningSecret::parse(SECRET).expect("valid");
        assert_eq!(format!("{secret:?}"), "SigningSecret(***)");
        let short = SigningSecret::parse("whsec_c2hvcnQ=").expect_err("too short");
        assert!(short.contains("5 bytes"), "{short}");
        let garbage = SigningSecret::parse("whsec_not*base64").expect_err("not base64");
        assert!(!garbage.contains("not*base64"), "{garbage}");
        // Without the prefix, and with the newline a secret file ends with.
        SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").expect("valid");
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
            signing: None,
            ca_file: None,
        };
        assert_eq!(settings.worst_case(), Duration::from_millis(15_750));
    }
}
