//! Values given on the command line (`-s KEY=VALUE`): typed as written, and checked before any
//! recipe is read.

use rhai::Dynamic;

/// The value `-s KEY=VALUE` gives the recipe, checked as the command line is resolved, before
/// any recipe is read (`tether watch` refuses it at once: no save of the recipe changes it).
/// Err: why, naming the `-s`: a key that is the release flow's own state for one run
/// (`deploy:*`), or a value tether reads that is not one (`keepalive`, `log_file`, `ssh_config`).
pub fn given_value(k: &str, v: &str) -> Result<Dynamic, String> {
    if super::stdlib::is_run_state(k) {
        return Err(format!(
            "-s {k}={v}: `{k}` is the release flow's own state for one run (what \
             deploy:prepare checked, the lock it took), not a setting: it cannot be given"
        ));
    }
    let value = if super::runtime_vars::PATHS.contains(&k) {
        v.into()
    } else {
        override_value(v)
    };
    super::runtime_vars::check(k, &value).map_err(|why| format!("-s {k}={v}: {why}"))?;
    Ok(value)
}

/// A `-s key=value` value: a string exactly as typed, except a decimal integer or a decimal
/// with a fraction written as Rhai prints it (`3`, `-1`, `0.3`, `2.0`; not `007`, `+3`,
/// `1_000`, `1.50`, `.5`, `1e3`) and `true`/`false`, which keep their type. Either way the
/// value prints as typed: `-s branch=0042` deploys branch `0042`, never `42`.
pub fn override_value(text: &str) -> Dynamic {
    if let Ok(n) = text.parse::<i64>() {
        if n.to_string() == text {
            return n.into();
        }
    }
    // Digits, one point, digits: f64's parser takes `inf`, `1e3` and `.5` too.
    let decimal = text
        .strip_prefix('-')
        .unwrap_or(text)
        .split_once('.')
        .is_some_and(|(whole, fraction)| {
            [whole, fraction]
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        });
    if decimal {
        if let Ok(x) = text.parse::<rhai::FLOAT>() {
            let value = Dynamic::from_float(x);
            if value.to_string() == text {
                return value;
            }
        }
    }
    match text {
        "true" => true.into(),
        "false" => false.into(),
        _ => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values_print_as_typed() {
        for text in [
            "0042",
            "007",
            "+3",
            "00000000000000",
            "1_000",
            "-0",
            " 3",
            "3 ",
            "0x10",
            "1e3",
            "99999999999999999999",
            "True",
            "",
            "hotfix/1",
        ] {
            let v = override_value(text);
            assert!(v.is_string(), "{text:?} became {}", v.type_name());
            assert_eq!(v.to_string(), text);
        }
        for text in ["0", "3", "-1", "20250101000003", "9223372036854775807"] {
            let v = override_value(text);
            assert_eq!(
                v.as_int().ok().map(|n| n.to_string()).as_deref(),
                Some(text)
            );
        }
        assert_eq!(override_value("true").as_bool(), Ok(true));
        assert_eq!(override_value("false").as_bool(), Ok(false));
    }

    /// A decimal with a fraction, written as Rhai prints it, is a number (stop 35 tester t15:
    /// `-s to=0.3` stayed text, and `on()`'s `timeout` refused it where `-s to=3` worked);
    /// one Rhai would print otherwise stays text, as `007` does.
    #[test]
    fn override_decimals_written_as_rhai_prints_them_are_numbers() {
        for text in ["0.3", "-0.5", "1.5", "2.0", "123.456", "0.001"] {
            let v = override_value(text);
            assert_eq!(v.as_float(), Ok(text.parse::<f64>().unwrap()), "{text}");
            assert_eq!(v.to_string(), text);
        }
        for text in [
            "1.50", ".5", "5.", "+0.5", "1.", "1e-3", "1.0e3", "inf", "NaN", "-inf", "0.30000",
            "1.2.3", "1,5", "-.5", "00.5", "1_0.5",
        ] {
            let v = override_value(text);
            assert!(v.is_string(), "{text:?} became {}", v.type_name());
            assert_eq!(v.to_string(), text);
        }
    }
}
