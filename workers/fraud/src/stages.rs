//! The fraud worker's two handlers, one per stage.
//!
//! Orders arrive keyed by order id, but a customer's history (velocity, first order) needs one
//! owner per customer, however many fraud instances run. So:
//! - [`OrdersStage`] (stateless) turns each `OrderPlaced` into a `FraudCheckRequested` on the
//!   internal topic `fraud.customer-orders.v1`, keyed by customer id;
//! - [`CustomersStage`] (state per customer, store `customers`) scores each request against the
//!   customer's [`CustomerHistory`] with the configured [`Rules`] and answers `FraudCleared` or
//!   `FraudFlagged` on `fraud.checks.v1`, keyed by order id.
//!
//! Both are deterministic: the outputs depend on the input and the state only (event ids are
//! derived from the input's, times come from the input's envelope), so a re-processed input
//! re-emits the very same events. Re-delivered inputs are skipped by the runtime's ledger of
//! processed event ids; an input that escaped it (re-delivered after the ledger's retention)
//! would be counted a second time in the customer's history.

use retail_events::fraud::{FraudCheckRequested, FraudCleared, FraudFlagged};
use retail_events::storefront::OrderPlaced;
use retail_events::{Event, Topic};
use retail_runtime::{Context, Handler, HandlerError};

use crate::rules::{CustomerHistory, Rules};

/// Stage `orders`: re-keys every order by customer for [`CustomersStage`]. Stateless, so it
/// scales with the order partitions and keeps no history of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrdersStage;

impl Handler for OrdersStage {
    type State = ();
    const STORE: Option<&'static str> = None;

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::StorefrontOrders]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::FraudCustomerOrders]
    }

    fn handle(
        &self,
        event: &Event,
        _state: &mut Option<()>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Event::OrderPlaced(order) = event else {
            return Ok(());
        };
        let request = check_request(order, context)?;
        context.emit(request);
        Ok(())
    }
}

/// The `FraudCheckRequested` for `order`, or why the order cannot be scored.
fn check_request(
    order: &OrderPlaced,
    context: &Context<'_>,
) -> Result<FraudCheckRequested, HandlerError> {
    if order.order_id.trim().is_empty() {
        return Err(HandlerError::rejected("an order without an order id"));
    }
    let order_id = &order.order_id;
    if order.customer.customer_id.trim().is_empty() {
        return Err(HandlerError::rejected(format!(
            "order {order_id} has no customer id"
        )));
    }
    if order.lines.is_empty() {
        return Err(HandlerError::rejected(format!(
            "order {order_id} has no lines"
        )));
    }
    if order.order_total.amount_minor < 0 {
        return Err(HandlerError::rejected(format!(
            "order {order_id} has a negative total ({} minor units)",
            order.order_total.amount_minor
        )));
    }
    let line_count = i32::try_from(order.lines.len()).map_err(|_| {
        HandlerError::rejected(format!("order {order_id} has more lines than an int holds"))
    })?;
    Ok(FraudCheckRequested {
        envelope: context.envelope_for::<FraudCheckRequested>(""),
        customer_id: order.customer.customer_id.clone(),
        order_id: order.order_id.clone(),
        customer_since: order.customer.customer_since,
        order_total: order.order_total.clone(),
        shipping_country: order.shipping_address.country_code.clone(),
        billing_country: order.billing_address.country_code.clone(),
        line_count,
    })
}

/// Stage `customers`: scores each order of a customer, in the order the customer's orders
/// arrive, against the customer's history. State: one [`CustomerHistory`] per customer id,
/// never deleted (see there).
#[derive(Debug, Clone)]
pub struct CustomersStage {
    /// The validated rule settings.
    rules: Rules,
}

impl CustomersStage {
    /// A stage scoring with `rules` (validated by [`crate::config::FraudConfig::rules`]).
    pub fn new(rules: Rules) -> Self {
        Self { rules }
    }

    /// The rules it scores with.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }
}

impl Handler for CustomersStage {
    type State = CustomerHistory;
    const STORE: Option<&'static str> = Some("customers");

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::FraudCustomerOrders]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::FraudChecks]
    }

    fn handle(
        &self,
        event: &Event,
        state: &mut Option<CustomerHistory>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let Event::FraudCheckRequested(request) = event else {
            return Ok(());
        };
        // Written by the orders stage, which already checks these; checked again because a
        // request that slipped through must not enter a customer's history.
        if request.customer_id.trim().is_empty() || request.order_id.trim().is_empty() {
            return Err(HandlerError::rejected(
                "a fraud check request without a customer id or an order id",
            ));
        }
        if request.order_total.amount_minor < 0 {
            return Err(HandlerError::rejected(format!(
                "fraud check request for order {} has a negative total",
                request.order_id
            )));
        }

        let history = state.get_or_insert_with(CustomerHistory::default);
        // Event time: when the order was placed, never when it is scored.
        let observation = history.observe(request.envelope.occurred_at, &self.rules);
        let assessment = self.rules.score(request, observation);
        if assessment.flagged {
            context.emit(FraudFlagged {
                envelope: context.envelope_for::<FraudFlagged>(""),
                order_id: request.order_id.clone(),
                customer_id: request.customer_id.clone(),
                score: assessment.score,
                threshold: self.rules.threshold,
                signals: assessment.signals,
            });
        } else {
            context.emit(FraudCleared {
                envelope: context.envelope_for::<FraudCleared>(""),
                order_id: request.order_id.clone(),
                customer_id: request.customer_id.clone(),
                score: assessment.score,
                signals: assessment.signals,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retail_events::common::{Address, Customer, DeliverySpeed, Money};
    use retail_events::fraud::{FraudRule, FraudSignal};
    use retail_events::storefront::OrderLine;
    use retail_events::{Envelope, EventId, EventType, Timestamp};

    const SECOND: i64 = 1_000_000;
    const MINUTE: i64 = 60 * SECOND;
    const DAY: i64 = 24 * 60 * MINUTE;
    const YEAR: i64 = 365 * DAY;
    /// When the storefront placed the orders of these tests.
    const PLACED: i64 = 1_750_000_000 * SECOND;
    /// The Kafka timestamp of the OrderPlaced record: the orders stage's clock.
    const RECORDED: i64 = PLACED + 3 * SECOND;

    fn address(country: &str) -> Address {
        Address {
            recipient_name: "Ada Lovelace".into(),
            line1: "1 Main Street".into(),
            line2: None,
            city: "Town".into(),
            postal_code: "12345".into(),
            region: None,
            country_code: country.into(),
        }
    }

    fn line(number: i32) -> OrderLine {
        OrderLine {
            line_number: number,
            sku: format!("sku-{number}"),
            product_name: "Widget".into(),
            quantity: 1,
            unit_price: Money {
                amount_minor: 1_000,
                currency: "EUR".into(),
            },
            unit_weight_grams: 100,
        }
    }

    fn order_placed() -> OrderPlaced {
        OrderPlaced {
            envelope: Envelope {
                event_id: EventId::from_u128(0x0a),
                event_type: OrderPlaced::NAME.into(),
                occurred_at: Timestamp::from_micros(PLACED),
                correlation_id: "order-1".into(),
                causation_id: None,
                producer: "storefront".into(),
                schema_version: 1,
            },
            order_id: "order-1".into(),
            customer: Customer {
                customer_id: "customer-7".into(),
                email: "ada@example.com".into(),
                full_name: "Ada Lovelace".into(),
                customer_since: Timestamp::from_micros(PLACED - YEAR),
            },
            lines: vec![line(1), line(2), line(3)],
            order_total: Money {
                amount_minor: 3_000,
                currency: "EUR".into(),
            },
            shipping_address: address("SE"),
            billing_address: address("DE"),
            delivery_speed: DeliverySpeed::Express,
        }
    }

    fn run_orders_stage(order: OrderPlaced) -> Result<Vec<Event>, HandlerError> {
        let input = Event::OrderPlaced(order);
        let mut context = Context::new(
            input.envelope(),
            "fraud.orders",
            Timestamp::from_micros(RECORDED),
        );
        OrdersStage.handle(&input, &mut None, &mut context)?;
        Ok(context.into_outputs())
    }

    #[test]
    fn the_orders_stage_maps_every_field_and_keys_by_customer() {
        let order = order_placed();
        let outputs = run_orders_stage(order.clone()).expect("handled");
        let [Event::FraudCheckRequested(request)] = outputs.as_slice() else {
            panic!("one FraudCheckRequested expected, got {outputs:?}");
        };
        let expected = FraudCheckRequested {
            envelope: Envelope {
                event_id: EventId::derived(order.envelope.event_id, "FraudCheckRequested", ""),
                event_type: "FraudCheckRequested".into(),
                occurred_at: Timestamp::from_micros(RECORDED),
                correlation_id: "order-1".into(),
                causation_id: Some(order.envelope.event_id),
                producer: "fraud.orders".into(),
                schema_version: FraudCheckRequested::REVISION,
            },
            customer_id: "customer-7".into(),
            order_id: "order-1".into(),
            customer_since: Timestamp::from_micros(PLACED - YEAR),
            order_total: Money {
                amount_minor: 3_000,
                currency: "EUR".into(),
            },
            shipping_country: "SE".into(),
            billing_country: "DE".into(),
            line_count: 3,
        };
        assert_eq!(request, &expected);
        assert_eq!(outputs[0].key(), "customer-7");
        assert_eq!(FraudCheckRequested::TOPIC, Topic::FraudCustomerOrders);
    }

    #[test]
    fn the_orders_stage_is_deterministic() {
        assert_eq!(
            run_orders_stage(order_placed()),
            run_orders_stage(order_placed())
        );
    }

    fn assert_rejected(order: OrderPlaced, expected_reason: &str) {
        let error = run_orders_stage(order).expect_err("rejected");
        assert_eq!(error, HandlerError::rejected(expected_reason));
    }

    #[test]
    fn the_orders_stage_rejects_orders_that_cannot_be_scored() {
        let mut no_lines = order_placed();
        no_lines.lines.clear();
        assert_rejected(no_lines, "order order-1 has no lines");

        let mut negative = order_placed();
        negative.order_total.amount_minor = -1;
        assert_rejected(
            negative,
            "order order-1 has a negative total (-1 minor units)",
        );

        let mut no_customer = order_placed();
        no_customer.customer.customer_id = String::new();
        assert_rejected(no_customer, "order order-1 has no customer id");

        let mut blank_customer = order_placed();
        blank_customer.customer.customer_id = "  ".into();
        assert_rejected(blank_customer, "order order-1 has no customer id");

        let mut no_order_id = order_placed();
        no_order_id.order_id = String::new();
        assert_rejected(no_order_id, "an order without an order id");
    }

    #[test]
    fn the_orders_stage_accepts_a_free_order() {
        let mut free = order_placed();
        free.order_total.amount_minor = 0;
        assert_eq!(run_orders_stage(free).expect("handled").len(), 1);
    }

    #[test]
    fn both_stages_ignore_other_events() {
        let stock = Event::FraudCleared(FraudCleared {
            envelope: order_placed().envelope,
            order_id: "order-1".into(),
            customer_id: "customer-7".into(),
            score: 0,
            signals: Vec::new(),
        });
        let mut context = Context::new(stock.envelope(), "fraud", Timestamp::from_micros(1));
        assert_eq!(OrdersStage.handle(&stock, &mut None, &mut context), Ok(()));
        let mut state = None;
        let stage = CustomersStage::new(Rules::default());
        assert_eq!(stage.handle(&stock, &mut state, &mut context), Ok(()));
        assert!(context.outputs().is_empty());
        assert_eq!(state, None);
    }

    #[test]
    fn the_stages_declare_their_topics_and_stores() {
        assert_eq!(OrdersStage.inputs(), vec![Topic::StorefrontOrders]);
        assert_eq!(OrdersStage.outputs(), vec![Topic::FraudCustomerOrders]);
        assert_eq!(OrdersStage::STORE, None);
        let customers = CustomersStage::new(Rules::default());
        assert_eq!(customers.inputs(), vec![Topic::FraudCustomerOrders]);
        assert_eq!(customers.outputs(), vec![Topic::FraudChecks]);
        assert_eq!(CustomersStage::STORE, Some("customers"));
        assert_eq!(FraudCleared::TOPIC, Topic::FraudChecks);
        assert_eq!(FraudFlagged::TOPIC, Topic::FraudChecks);
    }

    // The customers stage.

    /// A request as the orders stage writes it, for an order placed at `at`.
    fn request(
        order: u128,
        at: i64,
        amount: i64,
        account_age: i64,
        billing: &str,
    ) -> FraudCheckRequested {
        FraudCheckRequested {
            envelope: Envelope {
                event_id: EventId::from_u128(order),
                event_type: FraudCheckRequested::NAME.into(),
                occurred_at: Timestamp::from_micros(at),
                correlation_id: format!("order-{order}"),
                causation_id: Some(EventId::from_u128(order + 1_000)),
                producer: "fraud.orders".into(),
                schema_version: 1,
            },
            customer_id: "customer-7".into(),
            order_id: format!("order-{order}"),
            customer_since: Timestamp::from_micros(at - account_age),
            order_total: Money {
                amount_minor: amount,
                currency: "EUR".into(),
            },
            shipping_country: "SE".into(),
            billing_country: billing.into(),
            line_count: 1,
        }
    }

    /// Runs the customers stage on `request` with `state`; the record was written a while after
    /// the order, so the test shows event time is used, not the record time.
    fn score(
        stage: &CustomersStage,
        request: FraudCheckRequested,
        state: &mut Option<CustomerHistory>,
    ) -> Result<Vec<Event>, HandlerError> {
        let input = Event::FraudCheckRequested(request);
        let record_time = Timestamp::from_micros(input.envelope().occurred_at.as_micros() + DAY);
        let mut context = Context::new(input.envelope(), "fraud.customers", record_time);
        stage.handle(&input, state, &mut context)?;
        Ok(context.into_outputs())
    }

    fn defaults() -> CustomersStage {
        CustomersStage::new(Rules::default())
    }

    #[test]
    fn an_established_customers_ordinary_order_is_cleared_with_score_zero() {
        // The simulator's honest customer: account one year old, 20000, one country.
        let mut state = None;
        let outputs = score(
            &defaults(),
            request(1, PLACED, 20_000, YEAR, "SE"),
            &mut state,
        )
        .expect("handled");
        let [Event::FraudCleared(cleared)] = outputs.as_slice() else {
            panic!("one FraudCleared expected, got {outputs:?}");
        };
        assert_eq!(cleared.order_id, "order-1");
        assert_eq!(cleared.customer_id, "customer-7");
        assert_eq!(cleared.score, 0);
        assert!(cleared.signals.is_empty());
        assert_eq!(
            cleared.envelope.event_id,
            EventId::derived(EventId::from_u128(1), "FraudCleared", "")
        );
        assert_eq!(cleared.envelope.causation_id, Some(EventId::from_u128(1)));
        assert_eq!(cleared.envelope.correlation_id, "order-1");
        assert_eq!(outputs[0].key(), "order-1");
        assert_eq!(
            state,
            Some(CustomerHistory {
                orders_seen: 1,
                recent_orders: vec![Timestamp::from_micros(PLACED)],
            })
        );
    }

    #[test]
    fn a_brand_new_customers_large_cross_border_first_order_is_flagged_at_one_hundred() {
        // The simulator's fraudster: account age 0, first order, 150000, billing != shipping.
        let mut state = None;
        let outputs = score(
            &defaults(),
            request(1, PLACED, 150_000, 0, "DE"),
            &mut state,
        )
        .expect("handled");
        let [Event::FraudFlagged(flagged)] = outputs.as_slice() else {
            panic!("one FraudFlagged expected, got {outputs:?}");
        };
        assert_eq!(flagged.score, 100);
        assert_eq!(flagged.threshold, 70);
        assert_eq!(
            flagged.signals,
            vec![
                FraudSignal {
                    rule: FraudRule::HighOrderAmount,
                    points: 40,
                    detail: "order total 150000 EUR minor units is at least 100000".into(),
                },
                FraudSignal {
                    rule: FraudRule::CountryMismatch,
                    points: 25,
                    detail: "billing country \"DE\" is not shipping country \"SE\"".into(),
                },
                FraudSignal {
                    rule: FraudRule::NewCustomerLargeOrder,
                    points: 50,
                    detail: "first order, from an account 0s old (new below 1day), \
                             order total 150000 EUR minor units is at least 50000"
                        .into(),
                },
            ]
        );
        assert_eq!(
            flagged.envelope.event_id,
            EventId::derived(EventId::from_u128(1), "FraudFlagged", "")
        );
        assert_eq!(outputs[0].key(), "order-1");
    }

    #[test]
    fn the_same_order_from_a_known_customer_is_not_a_first_order() {
        let stage = defaults();
        let mut state = Some(CustomerHistory {
            orders_seen: 1,
            recent_orders: Vec::new(),
        });
        let outputs =
            score(&stage, request(2, PLACED, 150_000, 0, "DE"), &mut state).expect("handled");
        // 40 + 25: below 70 without the first-order rule.
        let [Event::FraudCleared(cleared)] = outputs.as_slice() else {
            panic!("one FraudCleared expected, got {outputs:?}");
        };
        assert_eq!(cleared.score, 65);
        assert_eq!(state.map(|history| history.orders_seen), Some(2));
    }

    #[test]
    fn the_first_order_rule_fires_once_per_customer() {
        let stage = defaults();
        let mut state = None;
        let first =
            score(&stage, request(1, PLACED, 60_000, 0, "SE"), &mut state).expect("handled");
        let second = score(
            &stage,
            request(2, PLACED + DAY * 10, 60_000, 0, "SE"),
            &mut state,
        )
        .expect("handled");
        let scores: Vec<i32> = [first, second]
            .iter()
            .map(|outputs| match outputs.as_slice() {
                [Event::FraudCleared(cleared)] => cleared.score,
                other => panic!("one FraudCleared expected, got {other:?}"),
            })
            .collect();
        assert_eq!(scores, vec![50, 0]);
    }

    #[test]
    fn flagging_happens_at_exactly_the_threshold() {
        let stage = CustomersStage::new(Rules {
            threshold: 65,
            ..Rules::default()
        });
        let mut state = None;
        let outputs =
            score(&stage, request(1, PLACED, 100_000, YEAR, "DE"), &mut state).expect("handled");
        let [Event::FraudFlagged(flagged)] = outputs.as_slice() else {
            panic!("one FraudFlagged expected, got {outputs:?}");
        };
        assert_eq!((flagged.score, flagged.threshold), (65, 65));
    }

    #[test]
    fn velocity_uses_event_time_even_when_orders_arrive_out_of_order() {
        let stage = CustomersStage::new(Rules {
            velocity_max_orders: 2,
            ..Rules::default()
        });
        let mut state = None;
        let mut velocity_fired = Vec::new();
        // Arrival order: 20m, 21m, 5m (late, alone in its window), 22m (third in [12m, 22m]).
        for (order, minute) in [(1, 20), (2, 21), (3, 5), (4, 22)] {
            let outputs = score(
                &stage,
                request(order, PLACED + minute * MINUTE, 100, YEAR, "SE"),
                &mut state,
            )
            .expect("handled");
            let [Event::FraudCleared(cleared)] = outputs.as_slice() else {
                panic!("one FraudCleared expected, got {outputs:?}");
            };
            velocity_fired.push(
                cleared
                    .signals
                    .iter()
                    .any(|signal| signal.rule == FraudRule::CustomerVelocity),
            );
        }
        assert_eq!(velocity_fired, vec![false, false, false, true]);
    }

    #[test]
    fn the_customers_stage_is_deterministic_for_the_same_input_and_state() {
        let stage = defaults();
        let before = Some(CustomerHistory {
            orders_seen: 4,
            recent_orders: (0..4)
                .map(|minute| Timestamp::from_micros(PLACED + minute * MINUTE))
                .collect(),
        });
        let input = request(9, PLACED + 5 * MINUTE, 120_000, YEAR, "DE");
        let (mut first_state, mut second_state) = (before.clone(), before);
        let first = score(&stage, input.clone(), &mut first_state).expect("handled");
        let second = score(&stage, input, &mut second_state).expect("handled");
        assert_eq!(first, second);
        assert_eq!(first_state, second_state);
        // 40 + 25, and velocity is not over (five orders in the window).
        let [Event::FraudCleared(cleared)] = first.as_slice() else {
            panic!("one FraudCleared expected, got {first:?}");
        };
        assert_eq!(cleared.score, 65);
    }

    #[test]
    fn the_customers_stage_rejects_requests_that_cannot_be_scored_and_keeps_the_state() {
        let stage = defaults();
        let before = Some(CustomerHistory {
            orders_seen: 3,
            recent_orders: vec![Timestamp::from_micros(PLACED)],
        });

        let mut state = before.clone();
        let mut negative = request(1, PLACED, 100, YEAR, "SE");
        negative.order_total.amount_minor = -10;
        assert_eq!(
            score(&stage, negative, &mut state),
            Err(HandlerError::rejected(
                "fraud check request for order order-1 has a negative total"
            ))
        );
        assert_eq!(state, before);

        let mut no_customer = request(1, PLACED, 100, YEAR, "SE");
        no_customer.customer_id = String::new();
        assert!(matches!(
            score(&stage, no_customer, &mut state),
            Err(HandlerError::Rejected { .. })
        ));
        assert_eq!(state, before);
    }
}
