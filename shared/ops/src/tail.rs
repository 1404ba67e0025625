//! `retailctl tail <topic>`: a topic's records as JSON lines, values decoded with the writer's
//! schema fetched from the registry by the id in each payload (so any Confluent-framed Avro
//! topic reads, not only the catalogue's). A record that does not decode is printed with an
//! `error` field instead of a `value`; the tail goes on.

use std::io::Write;

use schema_registry_converter::async_impl::avro::AvroDecoder;
use serde_json::{Value as Json, json};

use crate::connection::Connection;
use crate::error::OpsError;
use crate::scan::{ReadSpec, Record, Start, spawn_reader};

/// `retailctl tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// The topic: a catalogue name (the prefix is added) or any topic's full name.
    pub topic: String,

    /// Start at the earliest offset [default: at the end, for --follow].
    #[arg(long)]
    pub from_beginning: bool,

    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<u64>,

    /// Keep waiting for new records (until Ctrl-C or --limit); without it the command stops at
    /// the end the topic had when it started.
    #[arg(long)]
    pub follow: bool,
}

/// Text where the bytes are UTF-8, hex otherwise, as `{"<name>": ..}` or `{"<name>_hex": ..}`.
fn bytes_field(object: &mut serde_json::Map<String, Json>, name: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => {
            object.insert(name.to_owned(), Json::Null);
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                object.insert(name.to_owned(), Json::String(text.to_owned()));
            }
            Err(_) => {
                object.insert(format!("{name}_hex"), Json::String(hex(bytes)));
            }
        },
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _infallible = write!(text, "{byte:02x}");
        text
    })
}

/// The record's metadata (topic, partition, offset, timestamp, key, headers) as a JSON object.
pub fn record_metadata(record: &Record) -> serde_json::Map<String, Json> {
    let mut object = serde_json::Map::new();
    object.insert("topic".into(), json!(record.topic));
    object.insert("partition".into(), json!(record.partition));
    object.insert("offset".into(), json!(record.offset));
    object.insert("timestamp".into(), json!(record.timestamp));
    bytes_field(&mut object, "key", record.key.as_deref());
    let headers: Vec<Json> = record
        .headers
        .iter()
        .map(|(name, value)| {
            let mut header = serde_json::Map::new();
            header.insert("key".into(), json!(name));
            bytes_field(&mut header, "value", value.as_deref());
            Json::Object(header)
        })
        .collect();
    object.insert("headers".into(), Json::Array(headers));
    object
}

/// The JSON line of one record: its metadata plus `schema_id`, `record_name` and `value`, or
/// `error` when the value does not decode.
pub async fn record_line(decoder: &AvroDecoder, record: &Record) -> Json {
    let mut object = record_metadata(record);
    let Some(payload) = record.payload.as_deref() else {
        object.insert("value".into(), Json::Null);
        return Json::Object(object);
    };
    let decoded = match retail_codec::split_frame(payload) {
        Err(error) => Err(json!({ "class": error.class(), "message": error.to_string() })),
        Ok((schema_id, _)) => {
            object.insert("schema_id".into(), json!(schema_id));
            match decoder.decode(Some(payload)).await {
                Err(error) => {
                    // The decoder keeps failed look-ups; let the next record ask again.
                    decoder.remove_errors_from_cache();
                    let class = if error.retriable {
                        "registry_unavailable"
                    } else {
                        "undecodable"
                    };
                    Err(json!({ "class": class, "message": error.to_string() }))
                }
                Ok(result) => {
                    let name = result.name.map(|name| name.fullname(None));
                    match Json::try_from(result.value) {
                        Ok(value) => Ok((name, value)),
                        Err(error) => Err(json!({
                            "class": "not_representable_as_json",
                            "message": error.to_string()
                        })),
                    }
                }
            }
        }
    };
    match decoded {
        Ok((name, value)) => {
            object.insert("record_name".into(), json!(name));
            object.insert("value".into(), value);
        }
        Err(error) => {
            object.insert("value_hex".into(), json!(hex(payload)));
            object.insert("error".into(), error);
        }
    }
    Json::Object(object)
}

/// Prints the topic's records as JSON lines on `out`.
pub async fn tail(args: &TailArgs, out: &mut impl Write) -> Result<(), OpsError> {
    if !args.from_beginning && !args.follow {
        return Err(OpsError::Usage(
            "tail without --from-beginning starts at the end of the topic: add --follow to wait \
             for new records, or --from-beginning to read what is there"
                .to_owned(),
        ));
    }
    let connection = &args.connection;
    let topic = connection.resolve_topic(&args.topic);
    let topics = connection.cluster_topics_async().await?;
    let partitions = connection.require_topic(&topics, &topic)?;
    let settings = connection.registry_settings()?;
    connection.registry_subjects(&settings).await?;
    let decoder = AvroDecoder::new(settings);

    let spec = ReadSpec {
        topic,
        partitions,
        start: if args.from_beginning {
            Start::Beginning
        } else {
            Start::End
        },
        follow: args.follow,
        timeout: connection.timeout,
    };
    let mut records = spawn_reader(connection.reader_config(), spec);
    let mut printed: u64 = 0;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            return Ok(());
        }
        let record = tokio::select! {
            record = records.recv() => record,
            _ = &mut interrupted => return Ok(()),
        };
        let Some(record) = record else {
            return Ok(());
        };
        let line = record_line(&decoder, &record?).await;
        writeln!(out, "{line}")?;
        out.flush()?;
        printed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_shows_text_as_text_and_other_bytes_as_hex() {
        let record = Record {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"order-1".to_vec()),
            payload: None,
            headers: vec![
                ("traceparent".into(), Some(b"00-abc".to_vec())),
                ("binary".into(), Some(vec![0xff, 0x00])),
                ("empty".into(), None),
            ],
        };
        let metadata = Json::Object(record_metadata(&record));
        assert_eq!(
            metadata,
            json!({
                "topic": "t", "partition": 1, "offset": 7, "timestamp": 1_700_000_000_000_i64,
                "key": "order-1",
                "headers": [
                    {"key": "traceparent", "value": "00-abc"},
                    {"key": "binary", "value_hex": "ff00"},
                    {"key": "empty", "value": null},
                ]
            })
        );
    }
}
