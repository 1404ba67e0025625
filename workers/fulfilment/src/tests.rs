//! Every answer order, every reason to cancel, the timers, and late and duplicate events.

use super::*;
use retail_events::common::{Customer, Money};
use retail_events::fraud::{FraudCleared, FraudFlagged, FraudRule, FraudSignal};
use retail_events::inventory::{ShortLine, StockRejected, StockReleased, StockReserved};
use retail_events::payments::{
    PaymentAuthorized, PaymentFailed, PaymentFailureReason, PaymentMethod,
};
use retail_events::storefront::OrderLine;
use retail_events::{EventId, EventType};

const SECOND: i64 = 1_000_000;

fn config() -> FulfilmentConfig {
    FulfilmentConfig {
        answer_deadline: Duration::from_secs(60),
        pick_pack_time: Duration::from_secs(5),
        warehouse_id: "WH-1".into(),
        max_parcel_weight_grams: 1_000,
        order_retention: Duration::from_secs(3600),
    }
}

fn handler() -> Fulfilment {
    Fulfilment::new(&config()).expect("valid settings")
}

fn envelope<E: EventType>(n: u128) -> Envelope {
    Envelope {
        event_id: EventId::from_u128(n),
        event_type: E::NAME.to_owned(),
        occurred_at: Timestamp::from_micros(0),
        correlation_id: "o-1".into(),
        causation_id: None,
        producer: "test".into(),
        schema_version: 1,
    }
}

fn money(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: "EUR".into(),
    }
}

fn placed() -> Event {
    let address = Address {
        recipient_name: "A".into(),
        line1: "Street 1".into(),
        line2: None,
        city: "Town".into(),
        postal_code: "111".into(),
        region: None,
        country_code: "SE".into(),
    };
    Event::OrderPlaced(OrderPlaced {
        envelope: envelope::<OrderPlaced>(1),
        order_id: "o-1".into(),
        customer: Customer {
            customer_id: "c-1".into(),
            email: "c@example.com".into(),
            full_name: "C".into(),
            customer_since: Timestamp::from_micros(0),
        },
        lines: vec![
            OrderLine {
                line_number: 1,
                sku: "a".into(),
                product_name: "A".into(),
                quantity: 2,
                unit_price: money(100),
                unit_weight_grams: 400,
            },
            OrderLine {
                line_number: 2,
                sku: "b".into(),
                product_name: "B".into(),
                quantity: 1,
                unit_price: money(100),
                unit_weight_grams: 300,
            },
        ],
        order_total: money(300),
        shipping_address: address.clone(),
        billing_address: address,
        delivery_speed: DeliverySpeed::Express,
    })
}

fn reserved() -> Event {
    Event::StockReserved(StockReserved {
        envelope: envelope::<StockReserved>(2),
        order_id: "o-1".into(),
        lines: vec![],
    })
}

fn rejected() -> Event {
    Event::StockRejected(StockRejected {
        envelope: envelope::<StockRejected>(3),
        order_id: "o-1".into(),
        short_lines: vec![ShortLine {
            sku: "b".into(),
            requested: 1,
            available: 0,
        }],
    })
}

fn authorized() -> Event {
    Event::PaymentAuthorized(PaymentAuthorized {
        envelope: envelope::<PaymentAuthorized>(4),
        order_id: "o-1".into(),
        payment_id: "p-1".into(),
        amount: money(300),
        method: PaymentMethod::Card,
        authorization_code: "ok".into(),
    })
}

fn payment_failed() -> Event {
    Event::PaymentFailed(PaymentFailed {
        envelope: envelope::<PaymentFailed>(5),
        order_id: "o-1".into(),
        payment_id: "p-1".into(),
        amount: money(300),
        reason: PaymentFailureReason::Declined,
        message: Some("card declined".into()),
    })
}

fn cleared() -> Event {
    Event::FraudCleared(FraudCleared {
        envelope: envelope::<FraudCleared>(6),
        order_id: "o-1".into(),
        customer_id: "c-1".into(),
        score: 10,
        signals: vec![],
    })
}

fn flagged() -> Event {
    Event::FraudFlagged(FraudFlagged {
        envelope: envelope::<FraudFlagged>(7),
        order_id: "o-1".into(),
        customer_id: "c-9".into(),
        score: 100,
        threshold: 70,
        signals: vec![FraudSignal {
            rule: FraudRule::HighOrderAmount,
            points: 40,
            detail: "large".into(),
        }],
    })
}

/// Handles `event` at time `at` seconds.
fn handle_at(event: &Event, state: &mut Option<OrderState>, at: i64) -> Vec<Event> {
    let mut context = Context::new(
        event.envelope(),
        "fulfilment",
        Timestamp::from_micros(at * SECOND),
    );
    handler()
        .handle(event, state, &mut context)
        .expect("handled");
    context.into_outputs()
}

/// Fires the state's timer, as the runtime does once it is due.
fn fire(state: &mut Option<OrderState>) -> Vec<Event> {
    let timer = handler()
        .timer(state.as_ref().expect("state"))
        .expect("a timer");
    let mut context = Context::new(&timer.cause, "fulfilment", timer.due);
    handler()
        .on_timer("o-1", state, &mut context)
        .expect("fired");
    context.into_outputs()
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::name).collect()
}

fn cancellation(events: &[Event]) -> &OrderCancelled {
    let [Event::OrderCancelled(cancelled)] = events else {
        panic!("one OrderCancelled, got {events:?}");
    };
    cancelled
}

#[test]
fn the_three_answers_in_any_order_start_fulfilment_once_then_the_order_is_packed() {
    let answers = [placed(), reserved(), authorized(), cleared()];
    // Every order of the four events.
    let orders: [[usize; 4]; 6] = [
        [0, 1, 2, 3],
        [3, 2, 1, 0],
        [1, 0, 3, 2],
        [2, 3, 0, 1],
        [1, 2, 3, 0],
        [3, 0, 2, 1],
    ];
    for order in orders {
        let mut state = None;
        let mut outputs = Vec::new();
        for (step, index) in order.iter().enumerate() {
            outputs.extend(handle_at(&answers[*index], &mut state, 10 + step as i64));
        }
        assert_eq!(names(&outputs), ["FulfilmentStarted"], "{order:?}");
        let Event::FulfilmentStarted(started) = &outputs[0] else {
            unreachable!()
        };
        assert_eq!(started.pack_by, Timestamp::from_micros(18 * SECOND));
        assert_eq!(started.warehouse_id, "WH-1");

        let timer = handler()
            .timer(state.as_ref().expect("state"))
            .expect("pack timer");
        assert_eq!(timer.due, started.pack_by);
        let packed = fire(&mut state);
        let [Event::OrderPacked(packed)] = packed.as_slice() else {
            panic!("OrderPacked, got {packed:?}");
        };
        assert_eq!(packed.total_weight_grams, 1_100);
        assert_eq!(packed.parcel_count, 2);
        assert_eq!(packed.customer_id, "c-1");
        assert_eq!(packed.delivery_speed, DeliverySpeed::Express);
        assert_eq!(packed.lines.len(), 2);
        // Duplicates and late answers after packing change nothing.
        for event in &answers {
            assert!(handle_at(event, &mut state, 30).is_empty());
        }
        assert!(handle_at(&payment_failed(), &mut state, 31).is_empty());
    }
}

#[test]
fn each_negative_answer_cancels_with_its_reason_and_nothing_revives_the_order() {
    let cases = [
        (
            rejected(),
            CancellationReason::OutOfStock,
            "out of stock: b (requested 1, available 0)",
        ),
        (
            payment_failed(),
            CancellationReason::PaymentFailed,
            "payment failed (Declined): card declined",
        ),
        (
            flagged(),
            CancellationReason::FraudSuspected,
            "fraud score 100 >= 70: HighOrderAmount +40",
        ),
    ];
    for (negative, reason, detail) in cases {
        let mut state = None;
        handle_at(&placed(), &mut state, 1);
        let outputs = handle_at(&negative, &mut state, 2);
        let cancelled = cancellation(&outputs);
        assert_eq!(cancelled.reason, reason);
        assert_eq!(cancelled.detail, detail);
        assert_eq!(cancelled.customer_id, "c-1");
        // Late positive answers (a FraudCleared after the cancel) and repeats change nothing.
        for event in [
            reserved(),
            authorized(),
            cleared(),
            negative.clone(),
            placed(),
        ] {
            assert!(
                handle_at(&event, &mut state, 3).is_empty(),
                "{}",
                event.name()
            );
        }
    }
}

#[test]
fn a_negative_answer_before_the_order_cancels_with_what_is_known() {
    let mut state = None;
    let outputs = handle_at(&flagged(), &mut state, 1);
    let cancelled = cancellation(&outputs);
    assert_eq!(cancelled.customer_id, "c-9");
    assert!(handle_at(&placed(), &mut state, 2).is_empty());
}

#[test]
fn the_first_answer_of_a_kind_counts() {
    let mut state = None;
    handle_at(&placed(), &mut state, 1);
    handle_at(&authorized(), &mut state, 2);
    // A contradicting payment event after the authorisation is ignored.
    assert!(handle_at(&payment_failed(), &mut state, 3).is_empty());
    handle_at(&reserved(), &mut state, 4);
    assert_eq!(
        names(&handle_at(&cleared(), &mut state, 5)),
        ["FulfilmentStarted"]
    );
}

#[test]
fn the_deadline_cancels_an_order_missing_answers_and_names_them() {
    let mut state = None;
    handle_at(&reserved(), &mut state, 10);
    handle_at(&cleared(), &mut state, 20);
    let timer = handler()
        .timer(state.as_ref().expect("state"))
        .expect("deadline");
    // From the first event about the order, not the latest.
    assert_eq!(timer.due, Timestamp::from_micros(70 * SECOND));
    assert_eq!(timer.cause.event_id, EventId::from_u128(2));
    let outputs = fire(&mut state);
    let cancelled = cancellation(&outputs);
    assert_eq!(cancelled.reason, CancellationReason::Timeout);
    assert_eq!(
        cancelled.detail,
        "no answer within 1m from: the order itself (storefront), payment (payments)"
    );
    // A timeout's id differs from an answer-caused cancellation's, though the cause is shared.
    assert_eq!(cancelled.envelope.causation_id, Some(EventId::from_u128(2)));
    assert!(handle_at(&authorized(), &mut state, 80).is_empty());
}

#[test]
fn a_timer_fired_again_after_a_crash_emits_the_same_event() {
    let mut state = None;
    for event in [placed(), reserved(), authorized(), cleared()] {
        handle_at(&event, &mut state, 1);
    }
    let mut again = state.clone();
    assert_eq!(fire(&mut state), fire(&mut again));
}

#[test]
fn a_finished_order_is_forgotten_after_the_retention() {
    let mut state = None;
    handle_at(&rejected(), &mut state, 1);
    let timer = handler()
        .timer(state.as_ref().expect("state"))
        .expect("retention");
    assert_eq!(timer.due, Timestamp::from_micros((1 + 3600) * SECOND));
    assert!(fire(&mut state).is_empty());
    assert!(state.is_none());
}

#[test]
fn released_stock_and_other_events_are_not_answers() {
    let released = Event::StockReleased(StockReleased {
        envelope: envelope::<StockReleased>(9),
        order_id: "o-1".into(),
        lines: vec![],
        reason: retail_events::inventory::ReleaseReason::OrderCancelled,
    });
    let mut state = None;
    assert!(handle_at(&released, &mut state, 1).is_empty());
    assert!(state.is_none());
}

#[test]
fn an_invalid_order_is_rejected_without_creating_state() {
    let Event::OrderPlaced(mut order) = placed() else {
        unreachable!()
    };
    order.lines[0].quantity = 0;
    let event = Event::OrderPlaced(order);
    let mut context = Context::new(event.envelope(), "fulfilment", Timestamp::from_micros(0));
    let mut state = None;
    let result = handler().handle(&event, &mut state, &mut context);
    assert!(
        matches!(result, Err(HandlerError::Rejected { .. })),
        "{result:?}"
    );
    assert!(state.is_none());
}

#[test]
fn settings_are_checked() {
    let mut zero = config();
    zero.answer_deadline = Duration::ZERO;
    assert_eq!(
        Fulfilment::new(&zero).err(),
        Some(ConfigError::ZeroDeadline)
    );
    let mut short = config();
    short.order_retention = Duration::from_secs(30);
    assert!(matches!(
        Fulfilment::new(&short).err(),
        Some(ConfigError::RetentionBelowDeadline { .. })
    ));
    let mut unnamed = config();
    unnamed.warehouse_id = " ".into();
    assert_eq!(
        Fulfilment::new(&unnamed).err(),
        Some(ConfigError::EmptyWarehouse)
    );
}

#[test]
fn an_order_is_open_from_its_first_event_until_packed_or_cancelled() {
    let open = |state: &Option<OrderState>| handler().open_since(state.as_ref().expect("state"));
    let at = |seconds: i64| Some(Timestamp::from_micros(seconds * SECOND));

    let mut state = None;
    handle_at(&reserved(), &mut state, 10);
    assert_eq!(open(&state), at(10), "open from the first event about it");
    handle_at(&placed(), &mut state, 11);
    handle_at(&authorized(), &mut state, 12);
    assert_eq!(open(&state), at(10), "answers do not move it");
    handle_at(&cleared(), &mut state, 13);
    assert_eq!(
        open(&state),
        at(13),
        "packing: from the start of fulfilment"
    );
    fire(&mut state);
    assert_eq!(open(&state), None, "packed: finished");

    let mut cancelled = None;
    handle_at(&placed(), &mut cancelled, 20);
    handle_at(&payment_failed(), &mut cancelled, 21);
    assert_eq!(open(&cancelled), None, "cancelled: finished");
}

#[test]
fn cancellations_are_counted_by_reason() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        for (n, negative) in [payment_failed(), rejected(), flagged()].iter().enumerate() {
            let mut state = None;
            handle_at(&placed(), &mut state, 10 * n as i64);
            handle_at(negative, &mut state, 10 * n as i64 + 1);
        }
        let mut waiting = None;
        handle_at(&placed(), &mut waiting, 40);
        fire(&mut waiting);
    });
    let rendered = recorder.handle().render();
    for reason in [
        "PAYMENT_FAILED",
        "OUT_OF_STOCK",
        "FRAUD_SUSPECTED",
        "TIMEOUT",
    ] {
        assert!(
            rendered.contains(&format!(
                "fulfilment_orders_cancelled_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason} in {rendered}"
        );
    }
}
