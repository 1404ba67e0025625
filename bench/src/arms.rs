//! The two arms that are not worker binaries, each run as a process of its own by
//! `retail-bench` so its CPU and memory are measured alone:
//!
//! - **passthrough** (A1, the physical limit): a raw consumer → producer copy of each record's
//!   key and bytes to another topic, no decoding, with the workers' own librdkafka settings
//!   ([`RuntimeConfig::consumer_config`], [`RuntimeConfig::producer_config`]);
//! - **no-op hop** (A2's floor): the worker runtime with a stateless handler that answers each
//!   `OrderPlaced` with one small event: decode, handle, encode, produce, offsets stored after
//!   the outputs are acknowledged, like every worker.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use retail_events::inventory::LowStock;
use retail_events::{Event, Topic};
use retail_runtime::{Context, Handler, HandlerError, RuntimeConfig, shutdown, telemetry};

/// `retail-bench passthrough`.
#[derive(Debug, clap::Args)]
pub struct PassthroughArgs {
    /// Topic to read.
    #[arg(long)]
    pub input: String,
    /// Topic to copy to.
    #[arg(long)]
    pub output: String,
    #[command(flatten)]
    pub runtime: RuntimeConfig,
}

/// Copies every record of `input` to `output` until killed.
pub fn passthrough(args: &PassthroughArgs) -> anyhow::Result<()> {
    let group = args.runtime.group_id_or("bench-passthrough");
    let consumer: BaseConsumer = args.runtime.consumer_config(&group).create()?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        args.runtime.producer_config(&group).create()?;
    consumer.subscribe(&[&args.input])?;
    loop {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.context("consume")?;
        let mut record =
            BaseRecord::to(&args.output).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let mut pending = record;
        while let Err((_, returned)) = producer.send(pending) {
            // Queue full: let the producer's thread drain it.
            pending = returned;
            std::thread::sleep(Duration::from_millis(1));
        }
        consumer.store_offset_from_message(&message)?;
    }
}

/// The no-op handler: one `LowStock` per `OrderPlaced`, no state.
#[derive(Debug)]
pub struct NoOp;

impl Handler for NoOp {
    type State = ();
    const STORE: Option<&'static str> = None;

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::StorefrontOrders]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::InventoryStockLevels]
    }

    fn handle(
        &self,
        event: &Event,
        _state: &mut Option<()>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        if let Event::OrderPlaced(order) = event {
            let sku = order
                .lines
                .first()
                .map(|line| line.sku.clone())
                .unwrap_or_default();
            context.emit(LowStock {
                envelope: context.envelope_for::<LowStock>(""),
                sku,
                available: i32::try_from(order.lines.len()).unwrap_or(i32::MAX),
                threshold: 0,
            });
        }
        Ok(())
    }
}

/// `retail-bench noop-worker`.
#[derive(Debug, clap::Args)]
pub struct NoopArgs {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
}

/// Runs the no-op hop until SIGTERM, like a worker binary.
pub async fn noop_worker(args: NoopArgs) -> anyhow::Result<()> {
    telemetry::init_logging(args.runtime.log_format, "bench-noop");
    retail_runtime::run("bench-noop", args.runtime, NoOp, shutdown::on_signal()).await?;
    Ok(())
}
