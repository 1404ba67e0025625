//! A registry error that is not the message's fault is retried, and the retry really asks the
//! registry again (the registry client caches non-retriable errors; the codec must clear them).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use retail_codec::{Codec, DecodeError, RegisteredEvent, registry_settings};
use retail_events::storefront::OrderPlaced;
use retail_events::{EVENT_TYPES, Event, EventType, catalogue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers the first request with 401, every later one with the schema of OrderPlaced.
async fn scripted_registry(requests: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = vec![0; 4096];
            let _ = socket.read(&mut request).await;
            let (status, body) = if requests.fetch_add(1, Ordering::SeqCst) == 0 {
                (
                    "401 Unauthorized",
                    r#"{"error_code":40101,"message":"Unauthorized"}"#.to_owned(),
                )
            } else {
                let schema = &catalogue()
                    .event(OrderPlaced::FULL_NAME)
                    .expect("schema")
                    .text;
                (
                    "200 OK",
                    serde_json::json!({ "schema": schema }).to_string(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_refused_schema_lookup_is_retriable_and_the_retry_asks_again() {
    let requests = Arc::new(AtomicUsize::new(0));
    let url = scripted_registry(Arc::clone(&requests)).await;
    let settings = registry_settings(&url, None, Duration::from_secs(5)).expect("settings");

    // Encode an OrderPlaced with schema id 42 using an offline codec, decode with one that must
    // fetch id 42 from the scripted registry.
    let descriptor = &EVENT_TYPES[0];
    assert_eq!(descriptor.full_name, OrderPlaced::FULL_NAME);
    let writer = Codec::new(
        None,
        &[RegisteredEvent {
            descriptor,
            schema_id: 42,
        }],
    );
    let order = proptest::arbitrary::any::<OrderPlaced>()
        .new_tree(&mut TestRunner::default())
        .expect("tree")
        .current();
    let event = Event::OrderPlaced(order);
    let payload = writer.encode_to_vec(&event).expect("encode");

    let reader = Codec::new(Some(settings), &[]);
    let first = reader
        .decode(&payload)
        .await
        .expect_err("the registry refused");
    assert!(
        matches!(
            first,
            DecodeError::RegistryUnavailable { schema_id: 42, .. }
        ),
        "{first:?}"
    );
    assert!(first.is_retriable());
    assert_eq!(
        reader.decode(&payload).await,
        Ok(event),
        "the retry fetched the schema"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}
