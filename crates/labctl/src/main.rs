//! placeholder while being written
fn main() {}
