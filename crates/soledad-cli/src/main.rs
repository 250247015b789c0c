//! `soledad` command-line client.

fn main() {}
