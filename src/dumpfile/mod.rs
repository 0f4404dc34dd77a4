//! composefs-dump(5): the text form of a composefs tree, one file per line.
//!
//! - [`escape`]: the field escaping both directions share;
//! - [`parse`]: dumpfile -> [`crate::tree::Tree`] (what `mkcomposefs --from-file` reads);
//! - [`print`]: tree -> dumpfile (what `composefs-info dump` prints).

pub mod escape;
pub mod parse;
pub mod print;

pub use parse::{Error, LineError, ParseOptions, parse, parse_bytes};
pub use print::{to_bytes, write_dump};

#[cfg(test)]
mod tests;
