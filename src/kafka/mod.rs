//! Kafka: the producer that turns events into records and delivery reports into acks.
//! (The sinks' consumer side comes with the sink binaries.)

pub mod producer;

pub use producer::{Producer, ProducerError};
