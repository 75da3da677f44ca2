//! The variables an `on` closure captured, given to each host's closure as copies of its own.
//!
//! Rhai shares a closure's captured variables with every call of it, each one cell behind a
//! lock; `on` calls the closure for its hosts at once, in threads, and Rhai does not wait for
//! such a lock but tries it for about 50 ms, then fails with "Data race detected" (stop 51
//! tester t77: the stdlib's `deploy:check` on 32 hosts of a loaded machine failed six of them
//! so, as recipe errors). Each host's closure gets copies of its own instead, and a closure
//! that changed one is refused by name: the change would reach neither the other hosts nor the
//! code after the `on`, which gets each host's result from the map `on` returns.

use rhai::{Array, Dynamic, FnPtr, Map};

/// What an `on` closure captured, as it was when the `on` began.
pub struct Captured {
    /// The captured variables' names, in the closure's order.
    names: Vec<String>,
    /// Their values, shared with nothing.
    values: Vec<Dynamic>,
    /// How each value reads (Rhai's debug form), to tell one a host's closure changed.
    said: Vec<String>,
}

impl Captured {
    /// What `f` captured; `params` are the parameters of its script function, the captured
    /// variables first (Rhai passes them as curried arguments).
    pub fn of(f: &FnPtr, params: &[&str]) -> Self {
        let values: Vec<Dynamic> = f.curry().iter().map(unshared).collect();
        Captured {
            names: (0..values.len())
                .map(|i| {
                    params
                        .get(i)
                        .map_or_else(|| format!("#{i}"), |p| p.to_string())
                })
                .collect(),
            said: values.iter().map(|v| format!("{v:?}")).collect(),
            values,
        }
    }

    /// `f` for one host: its captured variables copies of its own, each in a cell of its own
    /// (as Rhai passes captured variables), and those cells, to read after the call.
    pub fn for_host(&self, f: &FnPtr) -> (FnPtr, Vec<Dynamic>) {
        let cells: Vec<Dynamic> = self
            .values
            .iter()
            .map(|v| unshared(v).into_shared())
            .collect();
        let mut own = f.clone();
        own.set_curry(cells.iter().cloned());
        (own, cells)
    }

    /// The name of the first captured variable whose copy in `cells` (from
    /// [`for_host`](Self::for_host)) no longer reads as it did.
    pub fn changed(&self, cells: &[Dynamic]) -> Option<&str> {
        cells
            .iter()
            .zip(&self.said)
            .position(|(cell, said)| format!("{:?}", cell.flatten_clone()) != *said)
            .map(|i| self.names[i].as_str())
    }
}

/// `value` with no cell in it shared with anything else: a captured variable's cell read out,
/// and the same inside arrays, maps and the captured variables of closures.
fn unshared(value: &Dynamic) -> Dynamic {
    let value = value.flatten_clone();
    if value.is_array() {
        let items: Array = value.cast::<Array>().iter().map(unshared).collect();
        return items.into();
    }
    if value.is_map() {
        let mut map = value.cast::<Map>();
        map.values_mut().for_each(|v| *v = unshared(v));
        return map.into();
    }
    if value.is_fnptr() {
        let mut f = value.cast::<FnPtr>();
        let curry: Vec<Dynamic> = f.curry().iter().map(unshared).collect();
        f.set_curry(curry);
        return f.into();
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each host's copies are its own: a change to one is seen as a change, under the captured
    /// variable's name, and reaches neither the value captured nor another host's copy.
    #[test]
    fn each_host_gets_copies_of_its_own() {
        let list: Array = vec![Dynamic::from("a"), Dynamic::from(1_i64).into_shared()];
        let mut f = FnPtr::new("anon").unwrap();
        f.set_curry([Dynamic::from(list).into_shared(), Dynamic::from(7_i64)]);
        let captured = Captured::of(&f, &["files", "count", "host"]);
        let (one, mut cells) = captured.for_host(&f);
        let (_, other) = captured.for_host(&f);
        assert_eq!(captured.changed(&cells), None);
        assert!(!one.curry()[0].is_locked());
        cells[0]
            .write_lock::<Array>()
            .unwrap()
            .push(Dynamic::from("b"));
        assert_eq!(captured.changed(&cells), Some("files"));
        assert_eq!(captured.changed(&other), None);
        *cells[1].write_lock::<i64>().unwrap() = 8;
        *cells[0].write_lock::<Array>().unwrap() = captured.values[0].clone().cast::<Array>();
        assert_eq!(captured.changed(&cells), Some("count"));
        // The element that was a shared cell is a copy too: a change through it is the
        // host's alone.
        let inner = &mut cells[0].write_lock::<Array>().unwrap()[1];
        assert!(!inner.is_shared());
    }
}
