//! Where messages go: the [`Channel`] trait and its implementations.
//!
//! A channel delivers one rendered [`Message`] and says how it went ([`Delivery`]): how many
//! attempts it made and, if it gave up, why. Retrying is the channel's business (only the
//! webhook retries); the handler turns the outcome into `NotificationSent` or
//! `NotificationFailed` and never asks again.
//!
//! Every channel must be idempotent by `notification_id`, because the runtime may hand the
//! handler the same input again after a crash (see the crate docs): the file channel overwrites
//! the same file with the same bytes, the webhook sends the same `Idempotency-Key`, the log
//! channel merely logs twice.
//!
//! Channels run on the worker's processing thread and may block (the webhook waits for answers
//! and sleeps between attempts): the start-up checks bound that time.

pub mod file;
pub mod log;
pub mod webhook;

#[cfg(test)]
pub(crate) mod fake;

use retail_events::notification::NotificationChannel;

use crate::message::Message;

pub use file::FileChannel;
pub use log::LogChannel;
pub use webhook::{SigningSecret, WebhookChannel, WebhookSettings};

/// A way to deliver messages to customers.
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// Which channel this is, for the notification events.
    fn kind(&self) -> NotificationChannel;

    /// Delivers `message`, retrying as the channel sees fit, and says how it went.
    fn deliver(&self, message: &Message) -> Delivery;
}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn kind(&self) -> NotificationChannel {
        (**self).kind()
    }

    fn deliver(&self, message: &Message) -> Delivery {
        (**self).deliver(message)
    }
}

/// How a delivery went.
#[derive(Debug)]
pub struct Delivery {
    /// Attempts made, the successful one included (`attempts` in the notification events).
    pub attempts: u32,
    /// `Ok` once delivered; the reason it was given up otherwise.
    pub result: Result<(), DeliveryError>,
}

impl Delivery {
    /// Delivered after `attempts` attempts.
    pub fn delivered(attempts: u32) -> Self {
        Self {
            attempts,
            result: Ok(()),
        }
    }

    /// Given up after `attempts` attempts.
    pub fn failed(attempts: u32, error: DeliveryError) -> Self {
        Self {
            attempts,
            result: Err(error),
        }
    }
}

/// Why a message was given up. The text goes into `NotificationFailed.error`, so it never
/// contains the webhook's URL (which may carry a token).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver refused the message for good (a 4xx answer): retrying cannot help.
    #[error("the webhook refused the message with HTTP {status}; not retried")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// Every attempt failed in a way that might have passed (timeouts, connection errors, 5xx).
    #[error("gave up after {attempts} attempts; the last failed with: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// What the last attempt ran into.
        last: String,
    },
    /// The request could not even be built or sent for a reason retrying cannot fix.
    #[error("the webhook request failed: {0}")]
    Request(String),
    /// The message could not be encoded.
    #[error("the message cannot be encoded as JSON: {0}")]
    Encode(String),
    /// The file channel could not write the message.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl DeliveryError {
    /// Whether the failure may pass if the message is tried again later (the receiver was
    /// unreachable, slow or failing), rather than being the message's own fault or a refusal.
    pub fn may_pass(&self) -> bool {
        matches!(self, Self::Exhausted { .. })
    }
}

/// Why a channel cannot be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The notification directory cannot be created.
    #[error(
        "cannot create the notification directory {path} (--notification-dir, NOTIFICATION_DIR): {source}"
    )]
    Directory {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the webhook's HTTP client: {0}")]
    Client(String),
}
