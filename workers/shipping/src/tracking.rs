//! Shipment ids and tracking numbers, derived from the order id alone.
//!
//! Nothing here is random or reads a clock: re-processing an `OrderPacked` after a crash must
//! produce a byte-identical `ShipmentCreated`, and a carrier booking keyed by the shipment id
//! must not be made twice for one order. The shipment id is a UUIDv5 of the order id (one
//! shipment per order); the tracking number is read from the bits of the shipment id in the
//! shape of the carrier's own numbers, check digit included, so it looks right to people and to
//! scanners in tests. They are stand-ins: a real integration would take the number the
//! carrier's booking API returns.

use retail_events::shipping::{Carrier, ServiceLevel};
use uuid::Uuid;

/// Namespace of shipment ids. Changing it changes every shipment id and tracking number, which
/// would make a re-processed order look like a new shipment: never change it.
const SHIPMENT_NAMESPACE: Uuid = Uuid::from_u128(0x3c9a_51e2_8d47_4b6f_a1d0_72e5_c4b8_9f13);

/// The UPS-like shipper account number in tracking numbers (six characters).
const UPS_SHIPPER: &str = "R3T41L";

/// The shipment id of the order's shipment: a UUIDv5 of the order id.
pub fn shipment_id(order_id: &str) -> Uuid {
    Uuid::new_v5(&SHIPMENT_NAMESPACE, order_id.as_bytes())
}

/// The tracking number of `shipment` with `carrier`, in the carrier's format:
/// - PostNord: an SSCC as PostNord prints it, `00` + `373` (extension digit 3, GS1 Sweden 73)
///   + 14 serial digits + a GS1 mod-10 check digit: 20 digits;
/// - UPS: `1Z` + shipper account + two-digit service code + 7 digits + the UPS check digit:
///   18 characters;
/// - DHL: a 10-digit waybill number, 9 serial digits and a mod-7 check digit;
/// - DPD: a 14-digit parcel number, 13 serial digits and a GS1 mod-10 check digit;
/// - an unknown carrier (never chosen: the rule book refuses it): `X` + 16 hex digits.
pub fn tracking_number(shipment: Uuid, carrier: Carrier, service_level: ServiceLevel) -> String {
    let bits = shipment.as_u128();
    match carrier {
        Carrier::Postnord => {
            let body = format!("373{:014}", bits % 10u128.pow(14));
            format!("00{body}{}", gs1_check_digit(&body))
        }
        Carrier::Ups => {
            let service_code = match service_level {
                ServiceLevel::Express => "01",
                ServiceLevel::Standard | ServiceLevel::Economy | ServiceLevel::Unknown => "03",
            };
            let body = format!("{UPS_SHIPPER}{service_code}{:07}", bits % 10u128.pow(7));
            format!("1Z{body}{}", ups_check_digit(&body))
        }
        Carrier::Dhl => {
            let serial = bits % 10u128.pow(9);
            format!("{serial:09}{}", serial % 7)
        }
        Carrier::Dpd => {
            let body = format!("{:013}", bits % 10u128.pow(13));
            format!("{body}{}", gs1_check_digit(&body))
        }
        Carrier::Unknown => format!("X{:016X}", (bits >> 64) as u64),
    }
}

/// The GS1 mod-10 check digit of a string of digits: from the right, weights 3, 1, 3, ...
fn gs1_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|digit| digit.to_digit(10))
        .enumerate()
        .map(|(position, digit)| if position % 2 == 0 { digit * 3 } else { digit })
        .sum();
    (10 - sum % 10) % 10
}

/// The UPS check digit of the 15 characters after `1Z`: letters count as `(ASCII - 63) mod 10`,
/// characters in even (1-based) positions count twice.
fn ups_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .chars()
        .enumerate()
        .map(|(index, character)| {
            let value = character
                .to_digit(10)
                .unwrap_or_else(|| (u32::from(character).saturating_sub(63)) % 10);
            if index % 2 == 1 { value * 2 } else { value }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipment_ids_are_a_function_of_the_order_id() {
        assert_eq!(shipment_id("order-1"), shipment_id("order-1"));
        assert_ne!(shipment_id("order-1"), shipment_id("order-2"));
        assert_eq!(shipment_id("order-1").get_version_num(), 5);
    }

    #[test]
    fn tracking_numbers_have_their_carriers_shapes() {
        let shipment = shipment_id("order-1");
        let postnord = tracking_number(shipment, Carrier::Postnord, ServiceLevel::Standard);
        assert!(postnord.starts_with("00373"), "{postnord}");
        assert_eq!(postnord.len(), 20);
        assert!(postnord.chars().all(|c| c.is_ascii_digit()));

        let ups = tracking_number(shipment, Carrier::Ups, ServiceLevel::Express);
        assert!(ups.starts_with("1ZR3T41L01"), "{ups}");
        assert_eq!(ups.len(), 18);

        let dhl = tracking_number(shipment, Carrier::Dhl, ServiceLevel::Standard);
        assert_eq!(dhl.len(), 10);
        let serial: u64 = dhl[..9].parse().expect("digits");
        assert_eq!(dhl[9..].parse::<u64>().expect("digit"), serial % 7);

        let dpd = tracking_number(shipment, Carrier::Dpd, ServiceLevel::Economy);
        assert_eq!(dpd.len(), 14);
        assert!(dpd.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn check_digits_follow_the_published_algorithms() {
        // Valid EAN-13 barcodes: 4006381333931 and 6291041500213.
        assert_eq!(gs1_check_digit("400638133393"), 1);
        assert_eq!(gs1_check_digit("629104150021"), 3);
        // UPS's documented sample number 1Z999AA10123456784.
        assert_eq!(ups_check_digit("999AA1012345678"), 4);
    }

    #[test]
    fn tracking_numbers_are_deterministic() {
        let shipment = shipment_id("order-9");
        for carrier in [Carrier::Postnord, Carrier::Ups, Carrier::Dhl, Carrier::Dpd] {
            assert_eq!(
                tracking_number(shipment, carrier, ServiceLevel::Standard),
                tracking_number(shipment, carrier, ServiceLevel::Standard)
            );
        }
    }
}
