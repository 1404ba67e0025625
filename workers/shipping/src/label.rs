//! The shipping label: a document rendered from the shipment, as plain text or ZPL.
//!
//! Rendering is a pure function of the shipment (no clock, no randomness, no map iteration
//! order), so a re-processed order carries a byte-identical label. Text that comes from the
//! customer (names, street lines) is cleaned of control characters so it cannot break the
//! layout, and in ZPL it is hex-escaped (`^FH`) so a `^` or `~` in an address cannot be read
//! as a printer command.

use std::fmt::Write as _;

use retail_events::common::{Address, StockLine};
use retail_events::shipping::{Carrier, LabelFormat, ServiceLevel, ShippingLabel};

/// What a label shows.
#[derive(Debug, Clone, Copy)]
pub struct LabelData<'a> {
    /// Who carries the parcel.
    pub carrier: Carrier,
    /// At which speed.
    pub service_level: ServiceLevel,
    /// The carrier's tracking number, printed and (in ZPL) as a barcode.
    pub tracking_number: &'a str,
    /// The shipment's id, for the warehouse's records.
    pub shipment_id: &'a str,
    /// The order the parcel belongs to.
    pub order_id: &'a str,
    /// Where it goes.
    pub address: &'a Address,
    /// How many parcels the order was packed into.
    pub parcel_count: i32,
    /// Their total weight.
    pub weight_grams: i32,
    /// What is in them.
    pub lines: &'a [StockLine],
}

/// The label of a shipment in `format`. Formats other than ZPL render as text: the worker only
/// offers `text` and `zpl` (see [`crate::config::LabelFormatArg`]).
pub fn render(format: LabelFormat, data: &LabelData<'_>) -> ShippingLabel {
    match format {
        LabelFormat::Zpl => ShippingLabel {
            format: LabelFormat::Zpl,
            document: render_zpl(data).into_bytes(),
        },
        LabelFormat::Text | LabelFormat::Pdf | LabelFormat::Unknown => ShippingLabel {
            format: LabelFormat::Text,
            document: render_text(data).into_bytes(),
        },
    }
}

/// The carrier's name as printed.
pub fn carrier_name(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Postnord => "POSTNORD",
        Carrier::Dhl => "DHL",
        Carrier::Ups => "UPS",
        Carrier::Dpd => "DPD",
        Carrier::Unknown => "UNKNOWN",
    }
}

/// The service level's name as printed.
pub fn service_name(service_level: ServiceLevel) -> &'static str {
    match service_level {
        ServiceLevel::Economy => "ECONOMY",
        ServiceLevel::Standard => "STANDARD",
        ServiceLevel::Express => "EXPRESS",
        ServiceLevel::Unknown => "UNKNOWN",
    }
}

/// `1234` grams as `1.234 kg`: integer arithmetic, so the text never depends on float rounding.
fn kilograms(grams: i32) -> String {
    format!("{}.{:03} kg", grams / 1000, (grams % 1000).abs())
}

/// The address as printed lines, empty optional lines left out.
fn address_lines(address: &Address) -> Vec<String> {
    let mut lines = vec![clean(&address.recipient_name), clean(&address.line1)];
    if let Some(line2) = address
        .line2
        .as_deref()
        .filter(|line| !line.trim().is_empty())
    {
        lines.push(clean(line2));
    }
    lines.push(clean(&format!("{} {}", address.postal_code, address.city)));
    if let Some(region) = address
        .region
        .as_deref()
        .filter(|region| !region.trim().is_empty())
    {
        lines.push(clean(region));
    }
    lines.push(clean(&address.country_code.to_ascii_uppercase()));
    lines
}

/// `text` on one line: control characters (newlines, tabs, escapes) become spaces, and the
/// ends are trimmed.
fn clean(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn render_text(data: &LabelData<'_>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason only.
    let _ = writeln!(out, "SHIPPING LABEL");
    let _ = writeln!(out, "Carrier:   {}", carrier_name(data.carrier));
    let _ = writeln!(out, "Service:   {}", service_name(data.service_level));
    let _ = writeln!(out, "Tracking:  {}", clean(data.tracking_number));
    let _ = writeln!(out, "Shipment:  {}", clean(data.shipment_id));
    let _ = writeln!(out);
    let _ = writeln!(out, "SHIP TO");
    for line in address_lines(data.address) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Parcels:   {}", data.parcel_count);
    let _ = writeln!(out, "Weight:    {}", kilograms(data.weight_grams));
    let _ = writeln!(out, "Order:     {}", clean(data.order_id));
    let _ = writeln!(out);
    let _ = writeln!(out, "CONTENTS");
    for line in data.lines {
        let _ = writeln!(out, "{:>5} x {}", line.quantity, clean(&line.sku));
    }
    out
}

/// ZPL II for a 4x6 inch label at 203 dpi: carrier and service, the tracking number as a Code
/// 128 barcode, the address, parcel facts and the contents.
fn render_zpl(data: &LabelData<'_>) -> String {
    let mut zpl = Zpl::default();
    zpl.command("^XA");
    // UTF-8 field data, so names with å, ä, ö print as written.
    zpl.command("^CI28");
    zpl.text(
        50,
        &format!(
            "{} {}",
            carrier_name(data.carrier),
            service_name(data.service_level)
        ),
    );
    zpl.barcode(120, data.tracking_number);
    zpl.text(28, "SHIP TO");
    for line in address_lines(data.address) {
        zpl.text(36, &line);
    }
    zpl.gap(10);
    zpl.text(
        28,
        &format!(
            "Parcels: {}  Weight: {}",
            data.parcel_count,
            kilograms(data.weight_grams)
        ),
    );
    zpl.text(28, &format!("Order: {}", data.order_id));
    zpl.text(28, &format!("Shipment: {}", data.shipment_id));
    for line in data.lines {
        zpl.text(24, &format!("{} x {}", line.quantity, line.sku));
    }
    zpl.command("^XZ");
    zpl.out
}

/// A ZPL document written top to bottom.
#[derive(Debug)]
struct Zpl {
    /// The document so far.
    out: String,
    /// Where the next field goes, in dots from the top.
    y: i32,
}

impl Default for Zpl {
    fn default() -> Self {
        Self {
            out: String::new(),
            y: 40,
        }
    }
}

impl Zpl {
    fn command(&mut self, command: &str) {
        self.out.push_str(command);
        self.out.push('\n');
    }

    /// A line of text `height` dots high.
    fn text(&mut self, height: i32, text: &str) {
        let _ = writeln!(
            self.out,
            "^FO40,{}^A0N,{height},{height}^FH^FD{}^FS",
            self.y,
            zpl_escape(&clean(text))
        );
        self.y += height + 10;
    }

    /// A Code 128 barcode `height` dots high, its text printed below it.
    fn barcode(&mut self, height: i32, text: &str) {
        let _ = writeln!(
            self.out,
            "^FO40,{}^BY3^BCN,{height},Y,N,N^FH^FD{}^FS",
            self.y,
            zpl_escape(&clean(text))
        );
        self.y += height + 50;
    }

    fn gap(&mut self, dots: i32) {
        self.y += dots;
    }
}

/// Field data for `^FH^FD`: the characters ZPL reads as commands (`^`, `~`) and the `^FH`
/// escape character itself (`_`) written as `_` + two hex digits.
fn zpl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '^' => out.push_str("_5E"),
            '~' => out.push_str("_7E"),
            '_' => out.push_str("_5F"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Address {
        Address {
            recipient_name: "Anna\nAndersson".to_owned(),
            line1: "Storgatan 1".to_owned(),
            line2: Some("Lgh 1101".to_owned()),
            city: "Stockholm".to_owned(),
            postal_code: "111 22".to_owned(),
            region: None,
            country_code: "se".to_owned(),
        }
    }

    fn data<'a>(address: &'a Address, lines: &'a [StockLine]) -> LabelData<'a> {
        LabelData {
            carrier: Carrier::Postnord,
            service_level: ServiceLevel::Standard,
            tracking_number: "00373000000000000012",
            shipment_id: "shipment-1",
            order_id: "order_^1~",
            address,
            parcel_count: 2,
            weight_grams: 1_234,
            lines,
        }
    }

    #[test]
    fn the_text_label_shows_everything_the_driver_and_the_warehouse_need() {
        let address = address();
        let lines = [StockLine {
            sku: "SKU-1".to_owned(),
            quantity: 3,
        }];
        let label = render(LabelFormat::Text, &data(&address, &lines));
        assert_eq!(label.format, LabelFormat::Text);
        let text = String::from_utf8(label.document).expect("utf-8");
        assert_eq!(
            text,
            "SHIPPING LABEL\n\
             Carrier:   POSTNORD\n\
             Service:   STANDARD\n\
             Tracking:  00373000000000000012\n\
             Shipment:  shipment-1\n\
             \n\
             SHIP TO\n\
             Anna Andersson\n\
             Storgatan 1\n\
             Lgh 1101\n\
             111 22 Stockholm\n\
             SE\n\
             \n\
             Parcels:   2\n\
             Weight:    1.234 kg\n\
             Order:     order_^1~\n\
             \n\
             CONTENTS\n    \
             3 x SKU-1\n"
        );
    }

    #[test]
    fn the_zpl_label_has_a_barcode_and_escapes_printer_commands() {
        let address = address();
        let label = render(LabelFormat::Zpl, &data(&address, &[]));
        assert_eq!(label.format, LabelFormat::Zpl);
        let zpl = String::from_utf8(label.document).expect("utf-8");
        assert!(zpl.starts_with("^XA\n^CI28\n"), "{zpl}");
        assert!(zpl.ends_with("^XZ\n"), "{zpl}");
        assert!(
            zpl.contains("^BCN,120,Y,N,N^FH^FD00373000000000000012^FS"),
            "{zpl}"
        );
        assert!(zpl.contains("^FDOrder: order_5F_5E1_7E^FS"), "{zpl}");
        assert!(zpl.contains("^FDAnna Andersson^FS"), "{zpl}");
    }

    #[test]
    fn weights_print_in_kilograms_without_floats() {
        assert_eq!(kilograms(0), "0.000 kg");
        assert_eq!(kilograms(999), "0.999 kg");
        assert_eq!(kilograms(20_001), "20.001 kg");
    }
}
