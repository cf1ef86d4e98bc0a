//! The Elasticsearch sink's pieces: the index a record goes to (`index`), and the `_bulk` request
//! and what its answer means for each record (`bulk`).

pub mod bulk;
pub mod index;
