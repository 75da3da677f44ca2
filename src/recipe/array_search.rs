//! Array search and comparison at the cost of a comparison: `contains` (and `in`), `index_of`,
//! array `==` and `!=`, as Rhai's own, which call `==` for each element through a
//! `NativeCallContext`. Each such call copies the engine's call stack, and with the debugger
//! tether registers (see `runaway::watch`) that stack holds the call's own frame, the whole
//! array in it: one search of an n-element array copied n² values (a 1000-host stdlib dry
//! run spent most of its time there). Elements of the value's own plain type (string,
//! integer, float, bool, character, `()`) are compared here, as Rhai's built-in `==` compares
//! them; any other pair goes through `==` as Rhai's functions send it, with their results and
//! errors.

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, NativeCallContext, FLOAT, INT};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Registers the functions on `engine`; found before the standard package's (an engine's own
/// functions are searched first).
pub fn register(engine: &mut rhai::Engine) {
    engine.register_fn(
        "contains",
        |ctx: NativeCallContext, a: &mut Array, v: Dynamic| {
            position(&ctx, a, &v, 0).map(|i| i.is_some())
        },
    );
    engine.register_fn(
        "index_of",
        |ctx: NativeCallContext, a: &mut Array, v: Dynamic| index(&ctx, a, &v, 0),
    );
    engine.register_fn(
        "index_of",
        |ctx: NativeCallContext, a: &mut Array, v: Dynamic, start: INT| {
            // As Rhai's: a negative start counts from the end, one before the start is 0.
            let len = a.len() as INT;
            let from = match start {
                s if s < 0 => (len + s).max(0),
                s => s.min(len),
            };
            index(&ctx, a, &v, from as usize)
        },
    );
    engine.register_fn("==", |ctx: NativeCallContext, a: &mut Array, b: Array| {
        equal(&ctx, a, &b)
    });
    engine.register_fn("!=", |ctx: NativeCallContext, a: &mut Array, b: Array| {
        equal(&ctx, a, &b).map(|e| !e)
    });
}

fn index(ctx: &NativeCallContext, a: &mut Array, v: &Dynamic, from: usize) -> Fallible<INT> {
    Ok(position(ctx, a, v, from)?.map_or(-1, |i| i as INT))
}

/// Where the first element of `a` from `from` on that equals `v` is.
fn position(
    ctx: &NativeCallContext,
    a: &mut Array,
    v: &Dynamic,
    from: usize,
) -> Fallible<Option<usize>> {
    for (i, item) in a.iter_mut().enumerate().skip(from) {
        if equals(ctx, item, v)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn equal(ctx: &NativeCallContext, a: &mut Array, b: &Array) -> Fallible<bool> {
    if a.len() != b.len() {
        return Ok(false);
    }
    for (x, y) in a.iter_mut().zip(b) {
        if !equals(ctx, x, y)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `item == value` as Rhai's array functions decide it: a pair of one plain type compared
/// here; any other through the `==` function, `false` where there is none for two types,
/// an error where there is none for one.
fn equals(ctx: &NativeCallContext, item: &mut Dynamic, value: &Dynamic) -> Fallible<bool> {
    if let Some(same) = plain(item, value) {
        return Ok(same);
    }
    ctx.call_native_fn_raw("==", true, &mut [item, &mut value.clone()])
        .or_else(|err| match *err {
            EvalAltResult::ErrorFunctionNotFound(ref sig, ..)
                if sig.starts_with("==") && item.type_id() != value.type_id() =>
            {
                Ok(Dynamic::FALSE)
            }
            _ => Err(err),
        })
        .map(|r| r.as_bool().unwrap_or(false))
}

/// `a == b` where both are of one plain type; `None` for any other pair.
fn plain(a: &Dynamic, b: &Dynamic) -> Option<bool> {
    if let (Some(x), Some(y)) = (
        a.read_lock::<ImmutableString>(),
        b.read_lock::<ImmutableString>(),
    ) {
        return Some(*x == *y);
    }
    if let (Some(x), Some(y)) = (a.read_lock::<INT>(), b.read_lock::<INT>()) {
        return Some(*x == *y);
    }
    if let (Some(x), Some(y)) = (a.read_lock::<FLOAT>(), b.read_lock::<FLOAT>()) {
        return Some(*x == *y);
    }
    if let (Some(x), Some(y)) = (a.read_lock::<bool>(), b.read_lock::<bool>()) {
        return Some(*x == *y);
    }
    if let (Some(x), Some(y)) = (a.read_lock::<char>(), b.read_lock::<char>()) {
        return Some(*x == *y);
    }
    (a.is_unit() && b.is_unit()).then_some(true)
}

#[cfg(test)]
mod tests {
    use rhai::Engine;

    /// What `script` gives: its value as debug text, or its error's message.
    fn outcome(engine: &Engine, script: &str) -> String {
        match engine.eval::<rhai::Dynamic>(script) {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[derive(Clone)]
    struct Opaque;

    /// Every function here gives what Rhai's own gives, errors included.
    #[test]
    fn searches_and_comparisons_give_what_rhais_own_give() {
        let mut rhais = Engine::new();
        rhais.register_type_with_name::<Opaque>("Opaque");
        rhais.register_fn("opaque", || Opaque);
        let mut ours = Engine::new();
        ours.register_type_with_name::<Opaque>("Opaque");
        ours.register_fn("opaque", || Opaque);
        super::register(&mut ours);
        let scripts = [
            r#"["a", "b", "c"].contains("b")"#,
            r#"["a", "b", "c"].contains("d")"#,
            r#""b" in ["a", "b"]"#,
            r#""z" in []"#,
            "[1, 2, 3].contains(2)",
            "[1, 2, 3].contains(2.0)",
            "[1.5, 2.5].contains(2.5)",
            "[1, 2, 3].contains(\"2\")",
            "['a', 'b'].contains('b')",
            "['a', 'b'].contains(\"b\")",
            "[\"b\"].contains('b')",
            "[true, false].contains(false)",
            "[(), 1].contains(())",
            "[[1, 2], [3]].contains([3])",
            "[[1, 2], [3]].contains([3, 4])",
            "[#{a: 1}, #{b: 2}].contains(#{b: 2})",
            "[opaque()].contains(opaque())",
            "[opaque()].contains(1)",
            "[1, opaque()].contains(1)",
            r#"["a", "b", "a"].index_of("a")"#,
            r#"["a", "b", "a"].index_of("a", 1)"#,
            r#"["a", "b", "a"].index_of("a", -1)"#,
            r#"["a", "b", "a"].index_of("a", -9)"#,
            r#"["a", "b", "a"].index_of("a", 9)"#,
            r#"["a", "b", "a"].index_of("c")"#,
            "[1, 2, 3].index_of(|x| x > 1)",
            r#"["a", 1] == ["a", 1]"#,
            r#"["a", 1] == ["a", 2]"#,
            r#"["a", 1] != ["a", 2]"#,
            "[1] == [1, 2]",
            "[1] == [1.0]",
            "[[1], [2]] == [[1], [2]]",
            "[opaque()] == [opaque()]",
            "const X = [\"a\", \"b\"]; X.contains(\"a\") && X.index_of(\"b\") == 1",
            "let x = \"b\"; let f = || [\"a\", x].contains(x); f.call()",
            "let xs = [\"a\", \"b\"]; let f = || xs.contains(\"b\"); f.call()",
        ];
        for script in scripts {
            assert_eq!(outcome(&ours, script), outcome(&rhais, script), "{script}");
        }
    }

    /// Plain pairs are compared here: no `==` call per element (Rhai's own makes one each,
    /// which a registered `==` counts).
    #[test]
    fn plain_pairs_are_compared_without_a_call_of_eq() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let calls = |with_ours: bool| {
            let n = Arc::new(AtomicUsize::new(0));
            let mut engine = Engine::new();
            let counted = n.clone();
            engine.register_fn("==", move |a: rhai::INT, b: rhai::INT| {
                counted.fetch_add(1, Ordering::SeqCst);
                a == b
            });
            if with_ours {
                super::register(&mut engine);
            }
            let found = engine
                .eval::<bool>("[1, 2, 3].contains(3) && [1, 2] == [1, 2] && 3 in [1, 2, 3]")
                .unwrap();
            assert!(found);
            n.load(Ordering::SeqCst)
        };
        assert_eq!(calls(false), 8);
        assert_eq!(calls(true), 0);
    }
}
