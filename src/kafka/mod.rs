//! Kafka: events become records (`record`), the producer sends them (keyed ones to the partition
//! `partition` picks) and turns delivery reports into acknowledgements (`producer`), and records
//! Kafka cannot take go to the disk spool and come back from it (`spooling`). (The sinks'
//! consumer side comes with the sink binaries.)

mod partition;
pub mod producer;
mod record;
mod spooling;

pub use producer::{Producer, ProducerError};
pub use record::{Encoder, RecordBatch};
