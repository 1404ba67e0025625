//! What the codec's integration tests share.

use retail_codec::{Codec, RegisteredEvent};
use retail_events::EVENT_TYPES;

/// A codec without a registry, with schema ids as a registry would hand them out: 101, 102, ...
pub(crate) fn offline_codec() -> Codec {
    let registered: Vec<RegisteredEvent> = EVENT_TYPES
        .iter()
        .map(|descriptor| RegisteredEvent {
            descriptor,
            schema_id: 101 + descriptor.index as u32,
        })
        .collect();
    Codec::new(None, &registered)
}
