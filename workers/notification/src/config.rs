//! The notification worker's own flags: the delivery channel and its settings, the template
//! override directory, and how long messages wait for an order's contact. Each has an
//! environment variable and a default; [`NotificationArgs::handler`] validates them against the
//! runtime's settings and builds the handler at start-up.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use retail_runtime::RuntimeConfig;
use retail_runtime::retry::Backoff;

use crate::channel::{
    Channel, ChannelError, FileChannel, LogChannel, SigningSecret, WebhookChannel, WebhookSettings,
};

/// The environment variable holding the webhook signing secret. Deliberately not a flag: a
/// command line is visible to every user of the machine (`ps`).
pub const WEBHOOK_SECRET_ENV: &str = "NOTIFICATION_WEBHOOK_SECRET";

/// A secret as given; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
use crate::handler::NotificationHandler;
use crate::templates::{TemplateError, Templates};

/// The delivery channel, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelArg {
    /// Log each message at info (development only: logs recipients and text).
    Log,
    /// Write each message as `<notification_id>.json` into --notification-dir.
    File,
    /// POST each message as JSON to --webhook-url.
    Webhook,
}

impl fmt::Display for ChannelArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Log => "log",
            Self::File => "file",
            Self::Webhook => "webhook",
        })
    }
}

/// The notification worker's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct NotificationArgs {
    /// Where messages go.
    #[arg(long, env = "NOTIFICATION_CHANNEL", value_enum, default_value_t = ChannelArg::File)]
    pub channel: ChannelArg,

    /// Directory the file channel writes messages into (created if missing).
    #[arg(long, env = "NOTIFICATION_DIR", default_value = "notifications")]
    pub notification_dir: PathBuf,

    /// URL the webhook channel POSTs messages to (http or https); required with --channel
    /// webhook.
    #[arg(
        long,
        env = "NOTIFICATION_WEBHOOK_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub webhook_url: String,

    /// How long one webhook attempt may take, connecting included.
    #[arg(
        long,
        env = "NOTIFICATION_WEBHOOK_TIMEOUT",
        default_value = "5s",
        value_parser = humantime::parse_duration,
    )]
    pub webhook_timeout: Duration,

    /// Webhook attempts per message, the first included (1: never retry).
    #[arg(long, env = "NOTIFICATION_WEBHOOK_MAX_ATTEMPTS", default_value_t = 3)]
    pub webhook_max_attempts: u32,

    /// Wait after the first failed webhook attempt; doubles with each further failure.
    #[arg(
        long,
        env = "NOTIFICATION_WEBHOOK_INITIAL_BACKOFF",
        default_value = "250ms",
        value_parser = humantime::parse_duration,
    )]
    pub webhook_initial_backoff: Duration,

    /// The longest wait between webhook attempts.
    #[arg(
        long,
        env = "NOTIFICATION_WEBHOOK_MAX_BACKOFF",
        default_value = "2s",
        value_parser = humantime::parse_duration,
    )]
    pub webhook_max_backoff: Duration,

    /// File holding the secret webhook deliveries are signed with (Standard Webhooks:
    /// `whsec_` and base64, at least 24 bytes). Or set NOTIFICATION_WEBHOOK_SECRET; one of the
    /// two is required with --channel webhook unless --webhook-unsigned.
    #[arg(long, env = "NOTIFICATION_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// NOTIFICATION_WEBHOOK_SECRET, read from the environment only.
    #[arg(skip = std::env::var(WEBHOOK_SECRET_ENV).ok().map(Secret))]
    pub webhook_secret: Option<Secret>,

    /// Send webhook deliveries unsigned, for a receiver that cannot verify signatures.
    #[arg(long, env = "NOTIFICATION_WEBHOOK_UNSIGNED")]
    pub webhook_unsigned: bool,

    /// PEM file of CA certificates the webhook's HTTPS certificate may also chain to (a
    /// private CA); the system's roots are always trusted.
    #[arg(long, env = "NOTIFICATION_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,

    /// Directory with templates overriding the built-in ones by file name
    /// (order_confirmed.txt, payment_failed.txt, order_cancelled.txt, order_shipped.txt);
    /// default: the built-in templates only.
    #[arg(long, env = "NOTIFICATION_TEMPLATES_DIR")]
    pub templates_dir: Option<PathBuf>,

    /// How long messages whose event came before the order's OrderPlaced wait for it (from
    /// the first such event) before they are given up as NotificationFailed.
    #[arg(
        long,
        env = "NOTIFICATION_CONTACT_TIMEOUT",
        default_value = "10m",
        value_parser = humantime::parse_duration,
    )]
    pub contact_timeout: Duration,

    /// How long a message the channel could not deliver (every attempt timed out, could not
    /// connect or got 5xx) waits before it is tried again; for as long, new messages wait
    /// without trying the channel. Messages wait in the state, so the worker goes on with
    /// other orders meanwhile.
    #[arg(
        long,
        env = "NOTIFICATION_REDELIVERY_INTERVAL",
        default_value = "30s",
        value_parser = humantime::parse_duration,
    )]
    pub redelivery_interval: Duration,

    /// How long after its first failed delivery a message is still tried again; after that it
    /// is given up as NotificationFailed.
    #[arg(
        long,
        env = "NOTIFICATION_GIVE_UP_AFTER",
        default_value = "24h",
        value_parser = humantime::parse_duration,
    )]
    pub give_up_after: Duration,

    /// How long an order is remembered once its shipment or cancellation message is settled;
    /// until then late and replayed events about it send nothing. Must exceed the contact
    /// timeout.
    #[arg(
        long,
        env = "NOTIFICATION_ORDER_RETENTION",
        default_value = "30d",
        value_parser = humantime::parse_duration,
    )]
    pub order_retention: Duration,
}

/// Why the notification worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--order-retention (NOTIFICATION_ORDER_RETENTION) must exceed --contact-timeout (NOTIFICATION_CONTACT_TIMEOUT)"
    )]
    RetentionBelowContactTimeout,
    #[error(
        "--redelivery-interval (NOTIFICATION_REDELIVERY_INTERVAL) must be above 0 and below --give-up-after (NOTIFICATION_GIVE_UP_AFTER)"
    )]
    RedeliveryInterval,
    #[error(
        "--order-retention (NOTIFICATION_ORDER_RETENTION) must exceed --give-up-after (NOTIFICATION_GIVE_UP_AFTER)"
    )]
    RetentionBelowGiveUp,
    /// The webhook channel needs somewhere to post.
    #[error("--channel webhook needs --webhook-url (NOTIFICATION_WEBHOOK_URL)")]
    MissingWebhookUrl,
    /// The webhook URL does not parse or is not http(s).
    #[error(
        "--webhook-url (NOTIFICATION_WEBHOOK_URL) must be an http:// or https:// URL: {reason}"
    )]
    InvalidWebhookUrl {
        /// Why (never the URL itself, which may carry a token).
        reason: String,
    },
    /// Webhook deliveries are signed unless the operator says otherwise.
    #[error(
        "--channel webhook signs every delivery: set NOTIFICATION_WEBHOOK_SECRET or --webhook-secret-file (NOTIFICATION_WEBHOOK_SECRET_FILE), or pass --webhook-unsigned (NOTIFICATION_WEBHOOK_UNSIGNED=true)"
    )]
    MissingWebhookSecret,
    /// Two secrets, and no way to tell which is meant.
    #[error(
        "both NOTIFICATION_WEBHOOK_SECRET and --webhook-secret-file (NOTIFICATION_WEBHOOK_SECRET_FILE) are set; keep one"
    )]
    TwoWebhookSecrets,
    /// A secret and the wish to send unsigned.
    #[error(
        "--webhook-unsigned (NOTIFICATION_WEBHOOK_UNSIGNED) contradicts the webhook secret that is set; drop one"
    )]
    UnsignedWithSecret,
    /// The secret file cannot be read.
    #[error(
        "cannot read --webhook-secret-file (NOTIFICATION_WEBHOOK_SECRET_FILE) {path}: {reason}"
    )]
    UnreadableWebhookSecret {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The secret is not usable; the message never repeats it.
    #[error("the webhook secret from {source_name} is unusable: {reason}")]
    InvalidWebhookSecret {
        /// Where it came from: the variable or the file.
        source_name: String,
        /// Why, without the secret.
        reason: String,
    },
    /// A webhook attempt must be allowed some time.
    #[error("--webhook-timeout (NOTIFICATION_WEBHOOK_TIMEOUT) must be more than zero")]
    ZeroWebhookTimeout,
    /// Zero attempts would never deliver.
    #[error(
        "--webhook-max-attempts (NOTIFICATION_WEBHOOK_MAX_ATTEMPTS) must be at least 1 (1: no retries)"
    )]
    ZeroWebhookAttempts,
    /// The back-off would shrink.
    #[error(
        "--webhook-initial-backoff (NOTIFICATION_WEBHOOK_INITIAL_BACKOFF) {initial} must not exceed --webhook-max-backoff (NOTIFICATION_WEBHOOK_MAX_BACKOFF) {max}"
    )]
    BackoffInverted {
        /// `--webhook-initial-backoff`, formatted.
        initial: String,
        /// `--webhook-max-backoff`, formatted.
        max: String,
    },
    /// A delivery could block the processing thread so long that the consumer is evicted from
    /// its group.
    #[error(
        "a webhook delivery can take up to {worst_case} (--webhook-max-attempts x --webhook-timeout + back-off), which must stay below --max-poll-interval (WORKER_MAX_POLL_INTERVAL) {max_poll_interval}"
    )]
    WebhookTooSlow {
        /// The worst case, formatted.
        worst_case: String,
        /// `--max-poll-interval`, formatted.
        max_poll_interval: String,
    },
    /// Messages must be allowed some time to wait for their order.
    #[error("--contact-timeout (NOTIFICATION_CONTACT_TIMEOUT) must be more than zero")]
    ZeroContactTimeout,
    /// The templates do not load.
    #[error(transparent)]
    Templates(#[from] TemplateError),
    /// The channel cannot be set up.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

impl NotificationArgs {
    /// The webhook's settings, validated against the runtime's poll interval; `None` unless the
    /// channel is `webhook`.
    pub fn webhook_settings(
        &self,
        runtime: &RuntimeConfig,
    ) -> Result<Option<WebhookSettings>, ConfigError> {
        if self.channel != ChannelArg::Webhook {
            return Ok(None);
        }
        if self.webhook_url.trim().is_empty() {
            return Err(ConfigError::MissingWebhookUrl);
        }
        let url = self
            .webhook_url
            .trim()
            .parse::<reqwest::Url>()
            .map_err(|error| ConfigError::InvalidWebhookUrl {
                reason: error.to_string(),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::InvalidWebhookUrl {
                reason: format!("the scheme is {}", url.scheme()),
            });
        }
        if self.webhook_timeout.is_zero() {
            return Err(ConfigError::ZeroWebhookTimeout);
        }
        if self.webhook_max_attempts == 0 {
            return Err(ConfigError::ZeroWebhookAttempts);
        }
        if self.webhook_initial_backoff > self.webhook_max_backoff {
            return Err(ConfigError::BackoffInverted {
                initial: humantime::format_duration(self.webhook_initial_backoff).to_string(),
                max: humantime::format_duration(self.webhook_max_backoff).to_string(),
            });
        }
        let signing = self.webhook_signing()?;
        if signing.is_some() && url.scheme() == "http" {
            tracing::warn!(
                "the webhook URL is http://: deliveries are signed but travel in clear text"
            );
        }
        let settings = WebhookSettings {
            url,
            signing,
            ca_file: self.webhook_ca_file.clone(),
            timeout: self.webhook_timeout,
            backoff: Backoff {
                initial: self.webhook_initial_backoff,
                max: self.webhook_max_backoff,
                max_attempts: self.webhook_max_attempts,
            },
        };
        let worst_case = settings.worst_case();
        if worst_case >= runtime.max_poll_interval {
            return Err(ConfigError::WebhookTooSlow {
                worst_case: humantime::format_duration(worst_case).to_string(),
                max_poll_interval: humantime::format_duration(runtime.max_poll_interval)
                    .to_string(),
            });
        }
        if worst_case >= runtime.drain_deadline {
            tracing::warn!(
                worst_case = %humantime::format_duration(worst_case),
                drain_deadline = %humantime::format_duration(runtime.drain_deadline),
                "a webhook delivery can outlast the drain deadline; a shutdown during one may leave its input to be re-processed (harmless: same Idempotency-Key)"
            );
        }
        Ok(Some(settings))
    }

    /// The signing secret from the environment or the file; `None` when unsigned was asked for.
    fn webhook_signing(&self) -> Result<Option<SigningSecret>, ConfigError> {
        let (text, source_name) = match (&self.webhook_secret, &self.webhook_secret_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoWebhookSecrets),
            (None, None) if self.webhook_unsigned => return Ok(None),
            (None, None) => return Err(ConfigError::MissingWebhookSecret),
            (Some(_), None) | (None, Some(_)) if self.webhook_unsigned => {
                return Err(ConfigError::UnsignedWithSecret);
            }
            (Some(Secret(text)), None) => (text.clone(), WEBHOOK_SECRET_ENV.to_owned()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::UnreadableWebhookSecret {
                        path: path.display().to_string(),
                        reason: error.to_string(),
                    }
                })?;
                (text, path.display().to_string())
            }
        };
        SigningSecret::parse(&text)
            .map(Some)
            .map_err(|reason| ConfigError::InvalidWebhookSecret {
                source_name,
                reason,
            })
    }

    /// The handler the flags describe, or why they do not describe a working one.
    pub fn handler(&self, runtime: &RuntimeConfig) -> Result<NotificationHandler, ConfigError> {
        if self.contact_timeout.is_zero() {
            return Err(ConfigError::ZeroContactTimeout);
        }
        if self.order_retention <= self.contact_timeout {
            return Err(ConfigError::RetentionBelowContactTimeout);
        }
        if self.redelivery_interval.is_zero() || self.redelivery_interval >= self.give_up_after {
            return Err(ConfigError::RedeliveryInterval);
        }
        if self.order_retention <= self.give_up_after {
            return Err(ConfigError::RetentionBelowGiveUp);
        }
        let templates = Templates::load(self.templates_dir.as_deref())?;
        let channel: Box<dyn Channel> = match self.channel {
            ChannelArg::Log => Box::new(LogChannel),
            ChannelArg::File => Box::new(FileChannel::new(&self.notification_dir)?),
            ChannelArg::Webhook => {
                let Some(settings) = self.webhook_settings(runtime)? else {
                    return Err(ConfigError::MissingWebhookUrl);
                };
                Box::new(WebhookChannel::new(settings)?)
            }
        };
        tracing::info!(
            channel = %self.channel,
            notification_dir = %self.notification_dir.display(),
            webhook = %self.redacted_webhook_url(),
            webhook_timeout = %humantime::format_duration(self.webhook_timeout),
            webhook_max_attempts = self.webhook_max_attempts,
            templates_overridden = ?templates.overridden(),
            contact_timeout = %humantime::format_duration(self.contact_timeout),
            redelivery_interval = %humantime::format_duration(self.redelivery_interval),
            give_up_after = %humantime::format_duration(self.give_up_after),
            "notification settings"
        );
        Ok(
            NotificationHandler::new(templates, channel, self.contact_timeout)
                .with_retention(self.order_retention)
                .with_redelivery(self.redelivery_interval, self.give_up_after),
        )
    }

    /// The webhook URL without credentials, query or fragment, for logs.
    pub fn redacted_webhook_url(&self) -> String {
        match self.webhook_url.trim().parse::<reqwest::Url>() {
            Ok(url) => format!(
                "{}://{}{}{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.port()
                    .map(|port| format!(":{port}"))
                    .unwrap_or_default(),
                url.path()
            ),
            Err(_) if self.webhook_url.is_empty() => String::new(),
            Err(_) => "(invalid)".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        runtime: RuntimeConfig,
        #[command(flatten)]
        notification: NotificationArgs,
    }

    /// A Standard Webhooks secret of 24 bytes.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// The flags, with no secret from the test's environment.
    fn parse(args: &[&str]) -> Cli {
        let mut cli =
            Cli::try_parse_from(std::iter::once("notification").chain(args.iter().copied()))
                .expect("flags parse");
        cli.notification.webhook_secret = None;
        cli
    }

    /// The flags, with a valid secret in NOTIFICATION_WEBHOOK_SECRET.
    fn parse_signed(args: &[&str]) -> Cli {
        let mut cli = parse(args);
        cli.notification.webhook_secret = Some(Secret(SECRET.to_owned()));
        cli
    }

    fn webhook_error(args: &[&str]) -> ConfigError {
        let cli = parse_signed(args);
        cli.notification
            .webhook_settings(&cli.runtime)
            .expect_err("refused")
    }

    #[test]
    fn the_webhook_secret_comes_from_the_environment_or_a_file_and_is_never_shown() {
        let url = "--webhook-url=https://hooks.example.com/notify";
        let settings = |cli: &Cli| cli.notification.webhook_settings(&cli.runtime);

        let cli = parse(&["--channel=webhook", url]);
        let missing = settings(&cli).expect_err("a secret is required");
        assert!(
            matches!(missing, ConfigError::MissingWebhookSecret),
            "{missing}"
        );
        let cli = parse(&["--channel=webhook", url, "--webhook-unsigned"]);
        let unsigned = settings(&cli)
            .expect("unsigned on request")
            .expect("webhook");
        assert!(unsigned.signing.is_none());

        let cli = parse_signed(&["--channel=webhook", url]);
        let signed = settings(&cli).expect("signed").expect("webhook");
        assert!(signed.signing.is_some());
        assert!(!format!("{:?} {signed:?}", cli.notification).contains("MfKQ9r8G"));

        let dir = std::env::temp_dir().join(format!("notification-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("secret");
        std::fs::write(&file, format!("{SECRET}\n")).expect("secret file");
        let file_flag = format!("--webhook-secret-file={}", file.display());
        let cli = parse(&["--channel=webhook", url, &file_flag]);
        assert!(
            settings(&cli)
                .expect("from the file")
                .expect("webhook")
                .signing
                .is_some()
        );

        let cli = parse_signed(&["--channel=webhook", url, &file_flag]);
        assert!(matches!(
            settings(&cli),
            Err(ConfigError::TwoWebhookSecrets)
        ));
        let cli = parse_signed(&["--channel=webhook", url, "--webhook-unsigned"]);
        assert!(matches!(
            settings(&cli),
            Err(ConfigError::UnsignedWithSecret)
        ));

        std::fs::write(&file, "whsec_dG9vIHNob3J0\n").expect("secret file");
        let cli = parse(&["--channel=webhook", url, &file_flag]);
        let short = settings(&cli).expect_err("too short").to_string();
        assert!(
            short.contains("9 bytes") && short.contains(&file.display().to_string()),
            "{short}"
        );
        assert!(!short.contains("dG9vIHNob3J0"), "{short}");

        let missing_file = format!("--webhook-secret-file={}", dir.join("absent").display());
        let cli = parse(&["--channel=webhook", url, &missing_file]);
        assert!(matches!(
            settings(&cli),
            Err(ConfigError::UnreadableWebhookSecret { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreadable_or_empty_webhook_ca_file_stops_the_start() {
        let cli = parse_signed(&[
            "--channel=webhook",
            "--webhook-url=https://hooks.example.com/notify",
            "--webhook-ca-file=/nonexistent/ca.pem",
        ]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let error = runtime
            .block_on(async { cli.notification.handler(&cli.runtime).map(drop) })
            .expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("cannot read the webhook CA file /nonexistent/ca.pem (--webhook-ca-file, NOTIFICATION_WEBHOOK_CA_FILE)"),
            "{error}"
        );

        // A file with no certificate in it would silently trust nothing extra.
        let empty =
            std::env::temp_dir().join(format!("notification-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("ca file");
        let empty_flag = format!("--webhook-ca-file={}", empty.display());
        let cli = parse_signed(&[
            "--channel=webhook",
            "--webhook-url=https://hooks.example.com/notify",
            &empty_flag,
        ]);
        let error = runtime
            .block_on(async { cli.notification.handler(&cli.runtime).map(drop) })
            .expect_err("refused");
        let _ = std::fs::remove_file(&empty);
        assert!(error.to_string().contains("PEM certificates"), "{error}");
    }

    #[test]
    fn the_defaults_write_files_and_wait_ten_minutes_for_a_contact() {
        if std::env::vars().any(|(name, _)| name.starts_with("NOTIFICATION_")) {
            // The environment overrides defaults; nothing to compare against then.
            return;
        }
        let cli = parse(&[]);
        assert_eq!(cli.notification.channel, ChannelArg::File);
        assert_eq!(
            cli.notification.notification_dir,
            PathBuf::from("notifications")
        );
        assert_eq!(cli.notification.contact_timeout, Duration::from_secs(600));
        assert_eq!(cli.notification.templates_dir, None);
        assert_eq!(cli.notification.webhook_max_attempts, 3);
        assert_eq!(cli.notification.webhook_timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_webhook_channel_needs_a_url() {
        assert!(matches!(
            webhook_error(&["--channel", "webhook"]),
            ConfigError::MissingWebhookUrl
        ));
    }

    #[test]
    fn the_webhook_url_must_be_http() {
        for url in ["ftp://example.com/hook", "not a url"] {
            let error = webhook_error(&["--channel", "webhook", "--webhook-url", url]);
            assert!(
                matches!(error, ConfigError::InvalidWebhookUrl { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn webhook_attempts_and_back_off_are_checked() {
        let url = "http://localhost:9/hook";
        assert!(matches!(
            webhook_error(&[
                "--channel=webhook",
                "--webhook-url",
                url,
                "--webhook-max-attempts=0"
            ]),
            ConfigError::ZeroWebhookAttempts
        ));
        assert!(matches!(
            webhook_error(&[
                "--channel=webhook",
                "--webhook-url",
                url,
                "--webhook-timeout=0s"
            ]),
            ConfigError::ZeroWebhookTimeout
        ));
        assert!(matches!(
            webhook_error(&[
                "--channel=webhook",
                "--webhook-url",
                url,
                "--webhook-initial-backoff=3s",
                "--webhook-max-backoff=1s"
            ]),
            ConfigError::BackoffInverted { .. }
        ));
    }

    #[test]
    fn a_webhook_that_could_outlast_the_poll_interval_is_refused() {
        let error = webhook_error(&[
            "--channel=webhook",
            "--webhook-url=https://hooks.example.com/notify",
            "--webhook-timeout=60s",
            "--webhook-max-attempts=5",
        ]);
        assert_eq!(
            error.to_string(),
            "a webhook delivery can take up to 5m 3s 750ms (--webhook-max-attempts x --webhook-timeout + back-off), which must stay below --max-poll-interval (WORKER_MAX_POLL_INTERVAL) 5m"
        );
    }

    #[test]
    fn a_valid_webhook_configuration_builds_even_inside_the_async_runtime() {
        let cli = parse_signed(&[
            "--channel=webhook",
            "--webhook-url=https://user:pass@hooks.example.com:8443/notify?token=secret",
        ]);
        // `main` builds the handler inside `#[tokio::main]`, where reqwest's blocking client
        // cannot be built directly; and drops it there when the worker stops.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let built = runtime.block_on(async {
            let handler = cli.notification.handler(&cli.runtime);
            let built = handler.is_ok();
            drop(handler);
            built
        });
        assert!(built);
        assert_eq!(
            cli.notification.redacted_webhook_url(),
            "https://hooks.example.com:8443/notify"
        );
    }

    #[test]
    fn the_file_channel_creates_its_directory_and_a_zero_contact_timeout_is_refused() {
        let dir = std::env::temp_dir().join(format!("notification-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dir_flag = format!("--notification-dir={}", dir.display());
        let cli = parse(&[&dir_flag]);
        assert!(cli.notification.handler(&cli.runtime).is_ok());
        assert!(dir.is_dir());
        let cli = parse(&[&dir_flag, "--contact-timeout=0s"]);
        assert!(matches!(
            cli.notification.handler(&cli.runtime),
            Err(ConfigError::ZeroContactTimeout)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_templates_directory_stops_the_worker() {
        let cli = parse(&["--channel=log", "--templates-dir=/nonexistent/templates"]);
        assert!(matches!(
            cli.notification.handler(&cli.runtime),
            Err(ConfigError::Templates(TemplateError::Read { .. }))
        ));
    }
}
