//! The file channel: writes each message as a JSON file named by its notification id, for a
//! mail relay (or a test) to pick up.
//!
//! Writes are atomic: the JSON goes to a temporary file in the same directory, is flushed to
//! disk, and is renamed over `<notification_id>.json`. A reader never sees half a message, and a
//! replay after a crash overwrites the file with the very same bytes (the message contains
//! nothing time-dependent): idempotent by construction.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use retail_events::notification::NotificationChannel;

use super::{Channel, ChannelError, Delivery, DeliveryError};
use crate::message::Message;

/// Writes messages into a directory.
#[derive(Debug, Clone)]
pub struct FileChannel {
    /// Where the files go; created at start-up.
    dir: PathBuf,
}

impl FileChannel {
    /// A channel writing into `dir`, which is created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, ChannelError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| ChannelError::Directory {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The file a message with this id is written to.
    pub fn path_of(&self, notification_id: &str) -> PathBuf {
        self.dir.join(format!("{notification_id}.json"))
    }

    /// Writes `contents` to `path` atomically: temporary file, fsync, rename, fsync of the
    /// directory (so the rename itself survives a power cut).
    fn write_atomically(&self, path: &Path, contents: &[u8]) -> std::io::Result<()> {
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The process id keeps two workers (an old owner still draining, a new one) from
        // writing into one temporary file; both rename the same bytes into place.
        let temporary = self
            .dir
            .join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(contents)?;
            file.sync_all()?;
            fs::rename(&temporary, path)
        })();
        if result.is_err() {
            // Best effort: a stale temporary file is harmless, and the next write replaces it.
            let _ = fs::remove_file(&temporary);
        }
        result?;
        // Directories cannot be opened for syncing everywhere; where they cannot, the rename is
        // as durable as the file system makes it.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Channel for FileChannel {
    fn kind(&self) -> NotificationChannel {
        NotificationChannel::File
    }

    fn deliver(&self, message: &Message) -> Delivery {
        let mut contents = match serde_json::to_vec_pretty(message) {
            Ok(contents) => contents,
            Err(error) => return Delivery::failed(0, DeliveryError::Encode(error.to_string())),
        };
        contents.push(b'\n');
        let path = self.path_of(&message.notification_id);
        match self.write_atomically(&path, &contents) {
            Ok(()) => Delivery::delivered(1),
            Err(source) => Delivery::failed(1, DeliveryError::Write { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use retail_events::notification::NotificationKind;

    use super::*;
    use crate::message::Recipient;

    fn message(body: &str) -> Message {
        Message {
            notification_id: "6d1f4c1e-0000-5000-8000-000000000001".to_owned(),
            kind: NotificationKind::OrderShipped,
            order_id: "order-1".to_owned(),
            customer_id: "customer-1".to_owned(),
            recipient: Recipient {
                name: "Anna".to_owned(),
                email: "anna@example.com".to_owned(),
            },
            subject: "Your order order-1 has shipped".to_owned(),
            body: body.to_owned(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("notification-file-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_message_is_written_as_json_named_by_its_id_and_a_replay_overwrites_it() {
        let dir = temp_dir("write");
        let channel = FileChannel::new(dir.join("nested")).expect("directory created");
        let message = message("Tracking number: 123\n");
        let first = channel.deliver(&message);
        assert_eq!((first.attempts, first.result.is_ok()), (1, true));
        let path = channel.path_of(&message.notification_id);
        let written = fs::read(&path).expect("written");
        let json: serde_json::Value = serde_json::from_slice(&written).expect("json");
        assert_eq!(json["notification_id"], message.notification_id.as_str());
        assert_eq!(json["kind"], "ORDER_SHIPPED");
        assert_eq!(json["recipient"]["email"], "anna@example.com");
        assert_eq!(json["body"], "Tracking number: 123\n");

        let again = channel.deliver(&message);
        assert!(again.result.is_ok());
        assert_eq!(fs::read(&path).expect("still there"), written);
        let files: Vec<_> = fs::read_dir(dir.join("nested"))
            .expect("listable")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            files,
            [format!("{}.json", message.notification_id)],
            "no temporary files left"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_is_reported_with_the_path() {
        let dir = temp_dir("fail");
        let channel = FileChannel::new(&dir).expect("directory created");
        fs::remove_dir_all(&dir).expect("removed");
        let delivery = channel.deliver(&message("x"));
        assert_eq!(delivery.attempts, 1);
        assert!(
            matches!(&delivery.result, Err(DeliveryError::Write { path, .. }) if path.starts_with(&dir)),
            "{:?}",
            delivery.result
        );
    }
}
