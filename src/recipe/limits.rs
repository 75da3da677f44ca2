//! How far a recipe may go before it is stopped as a runaway (README, "Limits"): generous
//! for any real recipe, and far below what would exhaust the machine.

/// Operations one evaluation may take before it is stopped as a runaway (an endless loop).
pub const MAX_OPERATIONS: u64 = 50_000_000;

/// Script function calls nested deeper than this stop the script (a runaway recursion).
pub const MAX_CALL_LEVELS: usize = 64;

/// The longest string a recipe may build, in bytes.
pub const MAX_STRING_SIZE: usize = 64 * 1024 * 1024;

/// The most items an array or a map may hold.
pub const MAX_COLLECTION_SIZE: usize = 1_000_000;
