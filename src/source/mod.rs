//! Sources: where events come from. Each source reads at its own pace, sends bounded batches of
//! events down a channel, and owns its positions (checkpoints), which move only as the events'
//! ack tokens are settled. Sources know nothing of Kafka.

pub mod durable;
pub mod file;
pub mod http;
pub mod journald;
