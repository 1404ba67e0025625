//! The log channel: "delivers" a message by logging it at info. For development and demos,
//! where no mailbox or webhook receiver is at hand; it logs the recipient and the text, which a
//! production log must not carry, so production uses the file or webhook channel.

use retail_events::notification::NotificationChannel;

use super::{Channel, Delivery};
use crate::message::{Message, kind_name};

/// Logs messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogChannel;

impl Channel for LogChannel {
    fn kind(&self) -> NotificationChannel {
        NotificationChannel::Log
    }

    fn deliver(&self, message: &Message) -> Delivery {
        tracing::info!(
            notification_id = %message.notification_id,
            kind = kind_name(message.kind),
            order_id = %message.order_id,
            to = %message.recipient.email,
            subject = %message.subject,
            body = %message.body,
            "notification"
        );
        Delivery::delivered(1)
    }
}
