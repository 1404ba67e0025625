//! Hostile length prefixes and counts cannot make the decoder allocate more than the payload
//! could hold. dhat's heap statistics count every byte allocated while a payload is decoded.
//!
//! One test function: dhat's statistics are process-wide, so nothing else may run meanwhile.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use retail_codec::{Codec, DecodeError};
use retail_events::{Event, arbitrary_event};

mod common;
use common::offline_codec;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Decodes `payload` and returns the result with the bytes allocated meanwhile (all of them,
/// freed or not).
fn decode_tracked(
    runtime: &tokio::runtime::Runtime,
    codec: &Codec,
    payload: &[u8],
) -> (Result<Event, DecodeError>, u64) {
    let before = dhat::HeapStats::get().total_bytes;
    let decoded = runtime.block_on(codec.decode(payload));
    let allocated = dhat::HeapStats::get().total_bytes - before;
    (decoded, allocated)
}

/// Zig-zag varint, as Avro writes lengths and counts.
fn push_long(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// A generous bound on what decoding `len` bytes may honestly allocate in all: the decoded
/// event's strings and vectors grow with the bytes actually read, never with a claimed length,
/// and an error message is a few hundred bytes.
fn bound(len: usize) -> u64 {
    64 * len as u64 + 4096
}

#[test]
fn hostile_lengths_and_counts_allocate_in_proportion_to_the_payload() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let codec = offline_codec();
    a_claimed_string_length_is_never_allocated(&runtime, &codec);
    a_claimed_item_count_is_never_allocated(&runtime, &codec);
    corrupted_payloads_allocate_in_proportion_to_their_size(&runtime, &codec);
}

/// Decoding `payload` fails as a malformed body, allocating no more than [`bound`] allows.
fn refused_within_bound(
    runtime: &tokio::runtime::Runtime,
    codec: &Codec,
    payload: &[u8],
    what: &str,
) {
    let (decoded, allocated) = decode_tracked(runtime, codec, payload);
    assert!(
        matches!(decoded, Err(DecodeError::MalformedBody { .. })),
        "{what}: {decoded:?}"
    );
    assert!(
        allocated <= bound(payload.len()),
        "{what}: allocated {allocated} bytes for a {}-byte payload",
        payload.len()
    );
}

fn a_claimed_string_length_is_never_allocated(runtime: &tokio::runtime::Runtime, codec: &Codec) {
    // OrderPlaced's envelope begins with a string (the event id). Claim lengths from just past
    // the payload to far beyond memory; apache-avro's own cap (16 MiB here) would have
    // allocated the middle ones.
    for claimed in [100, 64 * 1024, 8 * 1024 * 1024, 1 << 40] {
        let mut payload = vec![0, 0, 0, 0, 101];
        push_long(&mut payload, claimed);
        payload.extend_from_slice(b"abc");
        refused_within_bound(runtime, codec, &payload, &format!("claimed {claimed}"));
    }
}

fn a_claimed_item_count_is_never_allocated(runtime: &tokio::runtime::Runtime, codec: &Codec) {
    let order = offline_order(codec);
    // Locate the `lines` array's count: encode the order with no lines and with one, and the
    // first byte where the two differ is the count (0 against zig-zag 1). Then claim a hostile
    // count there, followed by the rest of the empty order.
    let Event::OrderPlaced(mut without_lines) = order else {
        unreachable!()
    };
    without_lines.lines.clear();
    let empty = codec
        .encode_to_vec(&without_lines.clone().into())
        .expect("encodes");
    let mut one = without_lines.clone();
    one.lines.push(retail_events::storefront::OrderLine {
        line_number: 1,
        sku: "SKU-1".into(),
        product_name: "Kettle".into(),
        quantity: 1,
        unit_price: without_lines.order_total.clone(),
        unit_weight_grams: 900,
    });
    let with_one = codec.encode_to_vec(&one.into()).expect("encodes");
    let at = empty
        .iter()
        .zip(&with_one)
        .position(|(a, b)| a != b)
        .expect("encodings differ");
    assert_eq!((empty[at], with_one[at]), (0, 2), "found the lines count");
    for claimed in [1_000, 1 << 20, 1 << 40] {
        let mut payload = empty[..at].to_vec();
        push_long(&mut payload, claimed);
        payload.extend_from_slice(&empty[at + 1..]);
        refused_within_bound(
            runtime,
            codec,
            &payload,
            &format!("claimed {claimed} lines"),
        );
    }
}

fn offline_order(codec: &Codec) -> Event {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    loop {
        let event = arbitrary_event()
            .new_tree(&mut runner)
            .expect("strategy")
            .current();
        if matches!(event, Event::OrderPlaced(_)) && codec.encode_to_vec(&event).is_ok() {
            return event;
        }
    }
}

/// Any event, corrupted at any byte: whatever the decoder answers, it allocates in proportion
/// to the payload.
fn corrupted_payloads_allocate_in_proportion_to_their_size(
    runtime: &tokio::runtime::Runtime,
    codec: &Codec,
) {
    let strategy = (arbitrary_event(), any::<prop::sample::Index>(), any::<u8>());
    TestRunner::new(Config::with_cases(512))
        .run(&strategy, |(event, at, byte)| {
            let mut payload = codec.encode_to_vec(&event).expect("encodes");
            let at = 5 + at.index(payload.len() - 5);
            payload[at] = byte;
            let (_, allocated) = decode_tracked(runtime, codec, &payload);
            prop_assert!(
                allocated <= bound(payload.len()),
                "allocated {} bytes for a {}-byte payload",
                allocated,
                payload.len()
            );
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
