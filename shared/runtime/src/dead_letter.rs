//! Dead-letter records: the original record, untouched, plus headers saying why it could not be
//! processed and where it came from, so an operator can read the reason and replay it after a fix.
//!
//! Headers (UTF-8 text values), added after the original record's own headers:
//! `dlq.error.class`, `dlq.error.message`, `dlq.original.topic`, `dlq.original.partition`,
//! `dlq.original.offset`, `dlq.original.timestamp` (ms since the epoch, when the record had one),
//! `dlq.worker`, `dlq.attempts`.

/// Why and from where a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Stable error class, e.g. `malformed_body` (also a metric label).
    pub error_class: String,
    /// The error message.
    pub message: String,
    /// Where the record was read.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp in ms since the epoch, if it had one.
    pub timestamp: Option<i64>,
    /// The worker that gave up on it.
    pub worker: String,
    /// How many times processing was attempted.
    pub attempts: u32,
}

/// Prefix of every header the runtime adds.
pub const HEADER_PREFIX: &str = "dlq.";

impl DeadLetter {
    /// The headers to add to the original record's.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![
            ("dlq.error.class", self.error_class.clone()),
            ("dlq.error.message", self.message.clone()),
            ("dlq.original.topic", self.topic.clone()),
            ("dlq.original.partition", self.partition.to_string()),
            ("dlq.original.offset", self.offset.to_string()),
        ];
        if let Some(timestamp) = self.timestamp {
            headers.push(("dlq.original.timestamp", timestamp.to_string()));
        }
        headers.push(("dlq.worker", self.worker.clone()));
        headers.push(("dlq.attempts", self.attempts.to_string()));
        headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into_bytes()))
            .collect()
    }

    /// Reads the runtime's headers back (for replay tools and tests); `None` if any required
    /// header is missing or malformed.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Option<Self> {
        let mut found = std::collections::HashMap::new();
        for (name, value) in headers {
            if let (Some(field), Some(value)) = (name.strip_prefix(HEADER_PREFIX), value) {
                found.insert(
                    field.to_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                );
            }
        }
        Some(Self {
            error_class: found.remove("error.class")?,
            message: found.remove("error.message")?,
            topic: found.remove("original.topic")?,
            partition: found.remove("original.partition")?.parse().ok()?,
            offset: found.remove("original.offset")?.parse().ok()?,
            timestamp: match found.remove("original.timestamp") {
                Some(text) => Some(text.parse().ok()?),
                None => None,
            },
            worker: found.remove("worker")?,
            attempts: found.remove("attempts")?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Header names a hostile or broken producer might send: the runtime's own, other ones,
    /// and random text, with arbitrary (or no) values.
    fn header() -> impl Strategy<Value = (String, Option<Vec<u8>>)> {
        let name = prop_oneof![
            prop::sample::select(vec![
                "dlq.error.class",
                "dlq.error.message",
                "dlq.original.topic",
                "dlq.original.partition",
                "dlq.original.offset",
                "dlq.original.timestamp",
                "dlq.worker",
                "dlq.attempts",
                "traceparent",
            ])
            .prop_map(str::to_owned),
            ".{0,24}",
        ];
        (
            name,
            prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        )
    }

    proptest! {
        // Fuzzing the header parsing of `retailctl dlq`: any headers, no panic; what parses
        // is written back to headers that parse the same.
        #[test]
        fn arbitrary_headers_never_panic(headers in prop::collection::vec(header(), 0..24)) {
            let parsed = DeadLetter::from_headers(
                headers.iter().map(|(name, value)| (name.as_str(), value.as_deref())),
            );
            if let Some(dead_letter) = parsed {
                let written = dead_letter.headers();
                let again = DeadLetter::from_headers(
                    written.iter().map(|(name, value)| (name.as_str(), Some(value.as_slice()))),
                );
                prop_assert_eq!(again, Some(dead_letter));
            }
        }
    }

    #[test]
    fn headers_round_trip() {
        let dead_letter = DeadLetter {
            error_class: "malformed_body".into(),
            message: "body of OrderPlaced (schema id 3) does not match its schema".into(),
            topic: "storefront.orders.v1".into(),
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_000),
            worker: "inventory".into(),
            attempts: 1,
        };
        let headers = dead_letter.headers();
        assert_eq!(
            headers[0],
            ("dlq.error.class".to_owned(), b"malformed_body".to_vec())
        );
        let read = DeadLetter::from_headers(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_slice())))
                .chain([("traceparent", Some(&b"00-..."[..]))]),
        );
        assert_eq!(read, Some(dead_letter));
        assert_eq!(
            DeadLetter::from_headers([("dlq.worker", Some(&b"x"[..]))]),
            None
        );
    }
}
