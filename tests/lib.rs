//! End-to-end tests of the labctl workspace live in `tests/tests/*.rs`; this library is empty.
