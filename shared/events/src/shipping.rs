//! Events written by the shipping worker (`schemas/shipping/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;
use crate::common::StockLine;

/// Format of a label document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LabelFormat {
    #[default]
    Unknown,
    Zpl,
    Pdf,
    Text,
}

/// The label to print for a parcel (`retail.shipping.ShippingLabel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct ShippingLabel {
    pub format: LabelFormat,
    #[serde(with = "apache_avro::serde::bytes")]
    pub document: Vec<u8>,
}

/// A carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Carrier {
    #[default]
    Unknown,
    Postnord,
    Dhl,
    Ups,
    Dpd,
}

/// A carrier's service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceLevel {
    #[default]
    Unknown,
    Economy,
    Standard,
    Express,
}

/// A shipment was booked and labelled (`retail.shipping.ShipmentCreated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct ShipmentCreated {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    pub shipment_id: String,
    /// What left the warehouse; inventory moves these units from reserved to shipped.
    pub lines: Vec<StockLine>,
    pub carrier: Carrier,
    pub service_level: ServiceLevel,
    pub tracking_number: String,
    pub label: ShippingLabel,
}
