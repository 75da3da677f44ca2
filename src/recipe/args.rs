//! What every recipe function shares: its result type, the recipe error it throws, and its
//! arguments read as strings.

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString};

/// What a registered function returns: a value, or an error the script sees.
pub type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Throws `message` as a recipe error (exit 4, with the script position).
pub fn fail<T>(message: impl Into<String>) -> Fallible<T> {
    Err(message.into().into())
}

/// A string or an array of strings (`"web"`, `["web", "db"]`) as a list; Err names `what`.
pub fn strings(value: &Dynamic, what: &str) -> Fallible<Vec<String>> {
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Ok(vec![s.to_string()]);
    }
    if let Some(a) = value.read_lock::<Array>() {
        return a
            .iter()
            .map(|v| {
                v.read_lock::<ImmutableString>()
                    .map(|s| s.to_string())
                    .ok_or_else(|| format!("{what} must be strings, not {}", v.type_name()).into())
            })
            .collect();
    }
    fail(format!(
        "{what} must be a string or an array of strings, not {}",
        value.type_name()
    ))
}
