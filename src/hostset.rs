//! Sets of host names: the compact notation of ClusterShell's nodeset (`web[01-40,42]`) that
//! folded output uses, and shards (`--shard K/N`: a stable part of a fleet for one CI job).

use std::collections::BTreeMap;

/// What ClusterShell's nodeset reads as its own syntax in a set: brackets, its operators
/// (`!` difference, `&` intersection, `^` symmetric difference), the separator, whitespace.
const NODESET_SYNTAX: [char; 9] = ['[', ']', '!', '&', '^', ',', ' ', '\t', '\n'];

/// Whether `name` holds nodeset syntax (a bracket, an operator, a separator) or a quote, and
/// so is written in quotes (see [`fold`]); any other name is written as it is, alone.
pub fn quoted(name: &str) -> bool {
    name.contains(NODESET_SYNTAX) || name.contains('"')
}

/// `names` written compactly: names that differ only in one number become one bracket of
/// ranges (`web01 web02 web03 web05` -> `web[01-03,05]`), keeping zero padding as ClusterShell's
/// nodeset does: numbers of one padding make ranges of their own (`web1 web01 web02 web001` ->
/// `web[1,01-02,001]`), unpadded ones first, then by width; an unpadded number as wide as
/// padded ones goes with them (`web09 web10` -> `web[09-10]`). Names are folded on their last
/// number first, then on the one before it, and so on, as nodeset folds names of several
/// numbers (`app-01.dc1 app-02.dc1 app-01.dc2 app-02.dc2` -> `app-[01-02].dc[1-2]`: stop 61
/// tester t103 found names folded on their last number only, so that `app-01.dc1` and
/// `app-02.dc1` stayed two). A name with nodeset's syntax of
/// its own (a bracket, an operator: `ssh://[::1]:22`, `a^1`) is listed in double quotes, as
/// it is (a quote and a backslash in it after a backslash, as [`expand`] reads them): written bare, `web[1]` would read as `web1`, and `x[1-3]` as three hosts. Groups
/// are sorted by their text; the result is a comma-separated list.
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    fold_parts(names).join(",")
}

/// [`fold`]'s parts (a name, or a set of names with brackets), sorted, not yet joined.
pub fn fold_parts<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut quoted_names: Vec<String> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref();
        // nodeset's own syntax in a name (a bracket, an operator, a separator) would read as
        // that: such a name is listed in quotes.
        if quoted(name) {
            quoted_names.push(format!(
                "\"{}\"",
                name.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        } else {
            parts.push(name.to_string());
        }
    }
    let slots = parts.iter().map(|p| digit_runs(p)).max().unwrap_or(0);
    for k in 1..=slots {
        // Nothing left to fold together (the status line folds its busy hosts at each redraw).
        if parts.len() < 2 {
            break;
        }
        parts = fold_slot(parts, k);
    }
    quoted_names.extend(parts);
    quoted_names.sort();
    quoted_names
}

/// How many runs of digits `name` holds.
fn digit_runs(name: &str) -> usize {
    let bytes = name.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .count()
}

/// One pass of [`fold`]: `parts` (names, or names folded on later numbers by the passes
/// before) that differ only in their `k`th number from the end (a bracket that an earlier pass
/// wrote counts as the number it replaced) become one bracket there. Correct whatever the
/// parts: the bracket stands for each of its numbers between the same text on either side.
fn fold_slot(parts: Vec<String>, k: usize) -> Vec<String> {
    // (before, after) -> (value, digits as written)
    let mut groups: BTreeMap<(String, String), Vec<(u64, String)>> = BTreeMap::new();
    let mut out = Vec::new();
    for part in parts {
        let split = slot(&part, k).and_then(|(before, digits, after)| {
            Some((before, digits, after, digits.parse().ok()?))
        });
        match split {
            Some((before, digits, after, value)) => groups
                .entry((before.to_string(), after.to_string()))
                .or_default()
                .push((value, digits.to_string())),
            None => out.push(part),
        }
    }
    for ((before, after), mut numbers) in groups {
        numbers.sort();
        numbers.dedup();
        match numbers.as_slice() {
            [(_, digits)] => out.push(format!("{before}{digits}{after}")),
            _ => out.push(format!("{before}[{}]{after}", ranges(&numbers).join(","))),
        }
    }
    out
}

/// The `k`th number of `part` from its end (1: the last), where a bracket (written by
/// [`fold_slot`]) counts as one: (before it, its digits, after it); `None` where that one is a
/// bracket or there is none.
fn slot(part: &str, k: usize) -> Option<(&str, &str, &str)> {
    let bytes = part.as_bytes();
    let mut end = bytes.len();
    let mut seen = 0;
    while end > 0 {
        let b = bytes[end - 1];
        if b == b']' {
            let open = part[..end].rfind('[')?;
            seen += 1;
            if seen == k {
                return None;
            }
            end = open;
        } else if b.is_ascii_digit() {
            // ASCII digits are one byte each: the run's start is a character boundary.
            let start = bytes[..end]
                .iter()
                .rposition(|c| !c.is_ascii_digit())
                .map_or(0, |i| i + 1);
            seen += 1;
            if seen == k {
                return Some((&part[..start], &part[start..end], &part[end..]));
            }
            end = start;
        } else {
            end -= 1;
        }
    }
    None
}

/// What `--hosts` takes to select `names` (which [`expand`] reads back as them), for a
/// command tether prints: their set, [`fold`]ed, where output is `folded`, else each name as
/// given (quoted only where it has a set's syntax of its own), joined by commas.
pub fn selection<S: AsRef<str>>(names: &[S], folded: bool) -> String {
    match folded {
        true => fold(names),
        false => names
            .iter()
            .map(|n| fold(std::slice::from_ref(n)))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The most names [`expand`] makes of one set.
pub const EXPAND_MAX: usize = 100_000;

/// The names of a set written as [`fold`] writes one (ClusterShell's nodeset notation, as
/// `--hosts` takes it): comma-separated names; a bracket of numbers and ranges
/// (`web[01-03,07]`) stands for one name per number, a range written with its first number's
/// padding (`01-03`: `01`, `02`, `03`; `9-10`: `9`, `10`), every `s`th number where it ends in
/// a step `/s` (`1-9/4`: `1`, `5`, `9`, as nodeset reads it), several brackets for every
/// combination, in order (`r[1-2]c[1-2]`: `r1c1`, `r1c2`, `r2c1`, `r2c2`); a name in double
/// quotes is that name as written (`"web[1]"`; `\"` a quote, `\\` a backslash). A bracket that holds anything but
/// digits, `-`, `,` and `/` is part of the name (`ssh://[::1]:2222`, as ssh takes it). An empty
/// name between commas is kept (`""`), for the caller to refuse with its own words.
/// Err: an unclosed bracket or quote, a quote inside a name, a range that runs backwards or
/// whose number does not fit in 64 bits, more than [`EXPAND_MAX`] names.
pub fn expand(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for item in split_top(text)? {
        if let Some(quoted) = item.strip_prefix('"') {
            // `split_top` found the closing quote: an item that goes on after it is refused.
            let Some(inner) = quoted.strip_suffix('"') else {
                return Err(format!("`{item}`: text after a quoted name"));
            };
            let mut name = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                name.push(match c {
                    '\\' => chars.next().unwrap_or('\\'),
                    c => c,
                });
            }
            names.push(name);
            continue;
        }
        if item.contains('"') {
            return Err(format!(
                "`{item}`: a quote inside a name (a name with a quote, or with brackets of its own, is written whole in double quotes)"
            ));
        }
        let mut made = vec![String::new()];
        let mut rest = item;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']').map(|c| open + c) else {
                return Err(format!("`{item}`: a `[` that is not closed"));
            };
            let (before, inside) = (&rest[..open], &rest[open + 1..close]);
            let numbers = match inside
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '-' | ',' | '/'))
            {
                true => numbers(inside).map_err(|e| format!("`{item}`: {e}"))?,
                // Not a set's bracket: the name's own.
                false => vec![format!("[{inside}]")],
            };
            if made.len().saturating_mul(numbers.len()) > EXPAND_MAX {
                return Err(format!("`{item}`: more than {EXPAND_MAX} names"));
            }
            made = made
                .iter()
                .flat_map(|m| numbers.iter().map(move |n| format!("{m}{before}{n}")))
                .collect();
            rest = &rest[close + 1..];
        }
        names.extend(made.into_iter().map(|m| m + rest));
        if names.len() > EXPAND_MAX {
            return Err(format!("more than {EXPAND_MAX} names"));
        }
    }
    Ok(names)
}

/// `text` split at its commas outside brackets and double quotes.
fn split_top(text: &str) -> Result<Vec<&str>, String> {
    let (mut items, mut start, mut depth, mut quoted, mut escaped) =
        (Vec::new(), 0, 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted && depth > 0 => depth -= 1,
            ',' if !quoted && depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(format!("`{}`: a quote that is not closed", &text[start..]));
    }
    items.push(&text[start..]);
    Ok(items)
}

/// The numbers of a bracket's ranges (`01-03,07`), as written with their padding.
fn numbers(ranges: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for range in ranges.split(',') {
        // A stepped range, as nodeset reads it: `1-9/2` is 1, 3, 5, 7, 9.
        let (span, step) = match range.split_once('/') {
            Some((span, step)) if span.contains('-') => (span, Some(step)),
            Some(_) => {
                return Err(format!(
                    "`[{ranges}]`: `{range}`: a step (`/2`) follows a range (`1-9/2`)"
                ))
            }
            None => (range, None),
        };
        let (first, last) = span.split_once('-').unwrap_or((span, span));
        if first.is_empty() || last.is_empty() || last.contains('-') {
            return Err(format!(
                "`[{ranges}]`: `{range}` is not a number or a range (`1-3`, `1-9/2`)"
            ));
        }
        let step = match step.map(|s| s.parse::<u64>()) {
            None => 1,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => {
                return Err(format!(
                    "`[{ranges}]`: `{range}`: the step is not a whole number from 1 on"
                ))
            }
        };
        let value = |d: &str| {
            d.parse::<u64>()
                .map_err(|_| format!("`[{ranges}]`: `{d}` is too large a number"))
        };
        let (from, to) = (value(first)?, value(last)?);
        if from > to {
            return Err(format!("`[{ranges}]`: the range `{range}` runs backwards"));
        }
        let count = (to - from) / step + 1;
        if count > EXPAND_MAX as u64 || out.len() + count as usize > EXPAND_MAX {
            return Err(format!("`[{ranges}]`: more than {EXPAND_MAX} names"));
        }
        let width = match first.len() > 1 && first.starts_with('0') {
            true => first.len(),
            false => 0,
        };
        out.extend(
            (0..count)
                .map(|i| from + i * step)
                .map(|n| format!("{n:0width$}")),
        );
    }
    Ok(out)
}

/// The ranges of `numbers` (value, digits as written; sorted by value, no duplicates), each
/// of one padding: a track per padded width (`01`: 2) and one for unpadded numbers (0). An
/// unpadded number as wide as a padded track goes with it (`01-40,42`), unless only the
/// unpadded track's last range ends just below it (`9-10`). Unpadded ranges first, then by
/// width, each in value order.
fn ranges(numbers: &[(u64, String)]) -> Vec<String> {
    // track -> ranges (first, last) as written
    let mut tracks: BTreeMap<usize, Vec<(u64, String, u64, String)>> = BTreeMap::new();
    for (value, digits) in numbers {
        let padded = digits.len() > 1 && digits.starts_with('0');
        let follows = |track: &Vec<(u64, String, u64, String)>| {
            track.last().is_some_and(|r| r.2 + 1 == *value)
        };
        let wide = tracks.get(&digits.len());
        let track = if padded || wide.is_some_and(follows) {
            digits.len()
        } else if tracks.get(&0).is_some_and(follows) || wide.is_none() {
            0
        } else {
            digits.len()
        };
        let ranges = tracks.entry(track).or_default();
        match ranges.last_mut() {
            Some(last) if last.2 + 1 == *value => (last.2, last.3) = (*value, digits.clone()),
            _ => ranges.push((*value, digits.clone(), *value, digits.clone())),
        }
    }
    tracks
        .into_values()
        .flatten()
        .map(|(first, a, last, b)| match first == last {
            true => a,
            false => format!("{a}-{b}"),
        })
        .collect()
}

/// One part of a fleet split in `count` parts (`--shard index/count`, `index` from 1): a
/// host belongs to exactly one part, always the same one, whatever the other hosts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part, from 1.
    pub index: u32,
    /// How many parts.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` (1 <= K <= N); Err says what is wrong.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard {text}: expected K/N, whole numbers with 1 <= K <= N <= {} (e.g. 2/5)",
                u32::MAX
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        // Digits only: no sign, no space, as a CI matrix's index is written.
        let number = |t: &str| match t.bytes().all(|b| b.is_ascii_digit()) {
            true => t.parse::<u32>().map_err(|_| bad()),
            false => Err(bad()),
        };
        let (index, count) = (number(k)?, number(n)?);
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether host `name` belongs to this shard: by a stable hash of the name (FNV-1a, then
    /// MurmurHash3's 64-bit finalizer, `fmix64`), so that every job of a CI matrix computes
    /// the same split. The finalizer brings every bit of the name to the low bits the modulo
    /// reads: FNV-1a's alone depend, modulo 2^k, on the low k bits of each byte only (stop 50
    /// tester t73: for 2 parts, the parity of the count of odd bytes; `web-a`, `web-c` ...
    /// `web-o` all fell in one part).
    pub fn contains(&self, name: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h % u64::from(self.count) == u64::from(self.index - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_numbers_with_padding_and_gaps() {
        let mut web: Vec<String> = (1..=40).map(|i| format!("web{i:02}")).collect();
        web.push("web42".into());
        assert_eq!(fold(&web), "web[01-40,42]");
        assert_eq!(
            fold(&["db1", "db2", "db3", "db10", "cache", "db11"]),
            "cache,db[1-3,10-11]"
        );
        assert_eq!(fold(&["web09", "web10", "web8"]), "web[8,09-10]");
        assert_eq!(
            fold(&["a1.example.com", "a2.example.com", "b7"]),
            "a[1-2].example.com,b7"
        );
        assert_eq!(fold(&["only1"]), "only1");
        assert_eq!(fold(&["x", "x"]), "x,x");
        assert_eq!(fold::<&str>(&[]), "");
        assert_eq!(fold(&["r1c2", "r1c3"]), "r1c[2-3]");
        // Names of several numbers fold on each (stop 61 tester t103: on the last only).
        assert_eq!(
            fold(&["app-01.dc1", "app-02.dc1", "app-01.dc2", "app-02.dc2"]),
            "app-[01-02].dc[1-2]"
        );
        assert_eq!(
            fold(&["app-01.dc1.example.com", "app-02.dc1.example.com"]),
            "app-[01-02].dc1.example.com"
        );
        assert_eq!(
            fold(&["r1c1", "r1c2", "r2c1", "r2c2", "r3c1"]),
            "r3c1,r[1-2]c[1-2]"
        );
        assert_eq!(fold(&["10.0.1.5", "10.0.2.5", "10.0.3.5"]), "10.0.[1-3].5");
        assert_eq!(
            fold(&["a1b1c1", "a1b2c1", "a2b1c1", "a2b2c1", "a3b1c1"]),
            "a3b1c1,a[1-2]b[1-2]c1"
        );
        // Different ranges on the later number stay apart.
        assert_eq!(fold(&["n1-1", "n1-2", "n2-1", "n2-3"]), "n1-[1-2],n2-[1,3]");
        // As ClusterShell's nodeset: a range per padding, unpadded first.
        let mut mixed: Vec<String> = (1..=20).map(|i| format!("web{i:02}")).collect();
        mixed.extend(["web1".into(), "web001".into()]);
        assert_eq!(fold(&mixed), "web[1,01-20,001]");
        assert_eq!(
            fold(&["web0", "web00", "web9", "web010", "web10"]),
            "web[0,9-10,00,010]"
        );
        let plain: Vec<String> = (1..=12).map(|i| format!("n{i}")).collect();
        assert_eq!(fold(&plain), "n[1-12]");
        // A name with nodeset's syntax of its own is not folded into a bracket, and is quoted:
        // bare, `web[1]` reads as web1 and `x[1-3]` as three hosts (fresh-eyes finding, stop
        // 28: `web[1],x[1-3] | web01` for the two hosts named so).
        assert_eq!(
            fold(&["ssh://[::1]:1", "ssh://[::1]:2"]),
            "\"ssh://[::1]:1\",\"ssh://[::1]:2\""
        );
        assert_eq!(
            fold(&["a^1", "a^2", "b!1", "b&2"]),
            "\"a^1\",\"a^2\",\"b!1\",\"b&2\""
        );
        assert_eq!(
            fold(&["web[1]", "web1", "web2", "x[1-3]"]),
            "\"web[1]\",\"x[1-3]\",web[1-2]"
        );
        assert_eq!(fold(&["web[1]"]), "\"web[1]\"");
        assert_eq!(fold(&["c+1", "c+2", "d~1", "d~2"]), "c+[1-2],d~[1-2]");
        // A character of several bytes before the digits (fresh-eyes finding: a panic, the
        // reporter gone, nothing printed and exit 0).
        assert_eq!(fold(&["д1", "д2", "д10"]), "д[1-2,10]");
        assert_eq!(fold(&["日本1", "日本3", "é"]), "é,日本[1,3]");
        assert_eq!(fold(&["😀01x", "😀02x"]), "😀[01-02]x");
    }

    /// What `fold` writes, `expand` reads back: the same names, whatever their numbers,
    /// padding, gaps or syntax of their own.
    #[test]
    fn expand_reads_what_fold_writes() {
        let sets: Vec<Vec<String>> = vec![
            (1..=40)
                .map(|i| format!("web{i:02}"))
                .chain(["web42".into()])
                .collect(),
            vec!["db1".into(), "db2".into(), "db10".into(), "cache".into()],
            vec![
                "web1".into(),
                "web01".into(),
                "web001".into(),
                "web9".into(),
                "web10".into(),
            ],
            vec![
                "r1c2".into(),
                "r1c3".into(),
                "a1.example.com".into(),
                "a2.example.com".into(),
            ],
            vec![
                "ssh://[::1]:1".into(),
                "ssh://[::1]:2".into(),
                "a^1".into(),
                "web[1]".into(),
            ],
            vec![
                "q\"1".into(),
                "b\\s[2]".into(),
                "root@127.0.0.1:41707".into(),
                "root@127.0.0.1:44991".into(),
            ],
            vec![
                "д1".into(),
                "д2".into(),
                "😀01x".into(),
                "😀02x".into(),
                "x".into(),
            ],
            [
                "app-01.dc1",
                "app-02.dc1",
                "app-01.dc2",
                "app-03.dc2",
                "app-1.dc01",
                "app9",
            ]
            .map(String::from)
            .to_vec(),
            // 3 x 7 x 2 distinct names (3, 7 and 2 share no factor), some left out.
            (0..42)
                .filter(|i| i % 5 != 0)
                .map(|i| format!("r{}-n{:02}.z{}", i % 3, i % 7, i % 2))
                .collect(),
            (0..40)
                .map(|i| format!("10.{}.{}.{}", i % 2, i / 10, i % 10))
                .collect(),
        ];
        for names in sets {
            let mut want = names.clone();
            want.sort();
            let mut got = expand(&fold(&names)).unwrap();
            got.sort();
            assert_eq!(got, want, "{}", fold(&names));
        }
    }

    #[test]
    fn a_selection_selects_its_names_folded_or_not() {
        let names = ["web01", "web02", "web[1]", "ssh://[::1]:22", "db"];
        assert_eq!(
            selection(&names, false),
            r#"web01,web02,"web[1]","ssh://[::1]:22",db"#
        );
        assert_eq!(
            selection(&names, true),
            r#""ssh://[::1]:22","web[1]",db,web[01-02]"#
        );
        for folded in [true, false] {
            let mut got = expand(&selection(&names, folded)).unwrap();
            got.sort();
            let mut want = names.to_vec();
            want.sort();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn expand_writes_out_ranges_with_their_padding() {
        let names = |t: &str| expand(t).unwrap();
        assert_eq!(names("web[01-03,07]"), ["web01", "web02", "web03", "web07"]);
        assert_eq!(names("n[9-11]"), ["n9", "n10", "n11"]);
        assert_eq!(names("n[098-100]"), ["n098", "n099", "n100"]);
        assert_eq!(
            names("r[1-2]c[1-2].x"),
            ["r1c1.x", "r1c2.x", "r2c1.x", "r2c2.x"]
        );
        assert_eq!(names("a,b[1],c"), ["a", "b1", "c"]);
        assert_eq!(
            names("root@127.0.0.1:[41707,44991]"),
            ["root@127.0.0.1:41707", "root@127.0.0.1:44991"]
        );
        // Not a set's bracket: ssh's name, as before.
        assert_eq!(names("ssh://[::1]:2222,h"), ["ssh://[::1]:2222", "h"]);
        assert_eq!(names(r#""web[1]","a,b""#), ["web[1]", "a,b"]);
        assert_eq!(names(r#""q\"x\\""#), ["q\"x\\"]);
        // Stepped ranges, as ClusterShell's nodeset reads them (stop 52 tester t80: `[1-3/2]`
        // was a name of its own).
        assert_eq!(names("host[1-3/2]"), ["host1", "host3"]);
        assert_eq!(names("n[1-10/4]"), ["n1", "n5", "n9"]);
        assert_eq!(names("n[01-10/3,12]"), ["n01", "n04", "n07", "n10", "n12"]);
        assert_eq!(names("n[5-5/7]"), ["n5"]);
        assert_eq!(names("n[008-012/2]"), ["n008", "n010", "n012"]);
        assert_eq!(names("r[1-3/2]c[0-4/4]"), ["r1c0", "r1c4", "r3c0", "r3c4"]);
        assert_eq!(names("n[0-99999/1000]").len(), 100);
        // Empty names are the caller's to refuse.
        assert_eq!(names("a,,b"), ["a", "", "b"]);
        assert_eq!(names(""), [""]);
        for bad in [
            "web[3-1]",
            "web[1-3",
            "web[1-]",
            "web[,1]",
            "web[1-2-3]",
            "web[1/2]",
            "web[1-3/0]",
            "web[1-3/]",
            "web[1-3/2/2]",
            "web[3-1/2]",
            "web[/2]",
            "web[0-200000/2]",
            "web[99999999999999999999]",
            "web[0-100000]",
            "a[0-999]b[0-999]",
            "\"open",
            "\"a\"b",
            "we\"b\"",
        ] {
            let err = expand(bad).unwrap_err();
            assert!(err.contains('`'), "{bad}: {err}");
        }
    }

    #[test]
    fn shards_are_stable_disjoint_and_covering() {
        let names: Vec<String> = (0..100).map(|i| format!("host{i:03}")).collect();
        for n in 1..=7u32 {
            let shards: Vec<Shard> = (1..=n).map(|k| Shard { index: k, count: n }).collect();
            for name in &names {
                let owners = shards.iter().filter(|s| s.contains(name)).count();
                assert_eq!(owners, 1, "{name} in {owners} of {n} shards");
            }
            if n > 1 {
                // Every shard gets some of 100 hosts.
                for s in &shards {
                    assert!(names.iter().any(|h| s.contains(h)), "{s:?} is empty");
                }
            }
        }
        // Balanced for every N, powers of two too, on names that differ in a few bits only
        // (stop 50 tester t73: `web-a`, `web-c` ... `web-o` all in 2/2; odd-numbered webs
        // split by their count of digits).
        let sets: [Vec<String>; 3] = [
            (b'a'..=b'z')
                .step_by(2)
                .map(|c| format!("web-{}", c as char))
                .collect(),
            (1..200).step_by(2).map(|i| format!("web{i}")).collect(),
            (0..64)
                .map(|i| format!("10.0.{}.{}", i / 8, i % 8 * 4 + 1))
                .collect(),
        ];
        for set in &sets {
            // Where a fair share is six hosts or more.
            for n in [2u32, 4, 8]
                .into_iter()
                .filter(|n| set.len() >= 6 * *n as usize)
            {
                for k in 1..=n {
                    let s = Shard { index: k, count: n };
                    let got = set.iter().filter(|h| s.contains(h)).count();
                    // Within half and twice a fair share (at least one).
                    let fair = set.len() as f64 / f64::from(n);
                    assert!(
                        got >= (fair / 2.0).floor().max(1.0) as usize && got as f64 <= fair * 2.0,
                        "{s:?} holds {got} of {} ({set:?})",
                        set.len()
                    );
                }
            }
        }
        // Stable: the same answer whatever else is in the fleet or in which order.
        let s = Shard { index: 2, count: 3 };
        let first: Vec<bool> = names.iter().map(|h| s.contains(h)).collect();
        let again: Vec<bool> = names.iter().map(|h| s.contains(h)).collect();
        assert_eq!(first, again);
        assert_eq!(Shard::parse("2/5"), Ok(Shard { index: 2, count: 5 }));
        assert_eq!(Shard::parse("01/03"), Ok(Shard { index: 1, count: 3 }));
        for bad in [
            "0/3",
            "4/3",
            "1/0",
            "x/2",
            "2",
            "1/2/3",
            "",
            " 1/3",
            "1/3 ",
            "1 /3",
            "+1/3",
            "1/+3",
            "-1/3",
            "1/4294967296",
        ] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
