//! `Include` patterns expanded exactly as ssh expands them: OpenSSH links its own glob(3)
//! (openbsd-compat/glob.c, also on glibc systems, whose `glob_t` lacks `gl_matchc`) and calls
//! it with `GLOB_TILDE` only. Its rules, which differ from the `glob` crate's and from glibc's:
//!
//! - `*` and `?` never match a `/`; a name starting with `.` is matched only by a pattern
//!   segment that starts with a literal `.` (then `.` and `..` match too, as readdir lists
//!   them: `.*` includes the directory itself and its parent, which read as empty files).
//! - `**` is `*` (no recursion); `\x` is a literal `x`.
//! - `[set]`, `[!set]` with ranges and `[:class:]`; `^` is an ordinary character; a `[`
//!   without a closing `]` is literal; an unknown class name makes the pattern match nothing.
//! - Segments without wildcards are not listed, only the whole path checked with lstat(2) (a
//!   dangling symbolic link is a match, which then cannot be opened and is skipped).
//! - Matches are sorted by their bytes (`strcmp`), the whole path, not directory by directory.
//!
//! `~` has been expanded by the caller (see `file::anchor`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::PathBuf;

/// One compiled pattern character.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(u8),
    Star,
    One,
    Set { negate: bool, items: Vec<Item> },
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Byte(u8),
    Range(u8, u8),
    Class(Class),
}

/// glob.c `cclasses`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl Class {
    fn named(name: &[u8]) -> Option<Class> {
        Some(match name {
            b"alnum" => Class::Alnum,
            b"alpha" => Class::Alpha,
            b"blank" => Class::Blank,
            b"cntrl" => Class::Cntrl,
            b"digit" => Class::Digit,
            b"graph" => Class::Graph,
            b"lower" => Class::Lower,
            b"print" => Class::Print,
            b"punct" => Class::Punct,
            b"space" => Class::Space,
            b"upper" => Class::Upper,
            b"xdigit" => Class::Xdigit,
            _ => return None,
        })
    }

    /// The C locale's ctype (ssh sets only LC_CTYPE from the environment, and config paths
    /// are compared byte by byte).
    fn has(self, b: u8) -> bool {
        match self {
            Class::Alnum => b.is_ascii_alphanumeric(),
            Class::Alpha => b.is_ascii_alphabetic(),
            Class::Blank => b == b' ' || b == b'\t',
            Class::Cntrl => b.is_ascii_control(),
            Class::Digit => b.is_ascii_digit(),
            Class::Graph => b.is_ascii_graphic(),
            Class::Lower => b.is_ascii_lowercase(),
            Class::Print => b.is_ascii_graphic() || b == b' ',
            Class::Punct => b.is_ascii_punctuation(),
            Class::Space => matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
            Class::Upper => b.is_ascii_uppercase(),
            Class::Xdigit => b.is_ascii_hexdigit(),
        }
    }
}

/// The paths `pattern` names, sorted as ssh sorts them; empty when none (ssh: "matched no
/// files", not an error).
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    let Some(toks) = compile(pattern.as_bytes()) else {
        return Vec::new();
    };
    if toks.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    walk(Vec::new(), &toks, &mut found);
    found.sort();
    found
        .into_iter()
        .map(|p| PathBuf::from(OsString::from_vec(p)))
        .collect()
}

/// glob() and glob0(): backslash protection, then sets, `?` and `*`. `None`: an unknown
/// character class (the pattern matches nothing).
fn compile(pattern: &[u8]) -> Option<Vec<Tok>> {
    // (byte, protected by a backslash)
    let mut chars = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        match (pattern[i], pattern.get(i + 1)) {
            (b'\\', Some(&next)) => {
                chars.push((next, true));
                i += 2;
            }
            (c, _) => {
                chars.push((c, c == b'\\'));
                i += 1;
            }
        }
    }
    let is = |at: usize, c: u8| chars.get(at) == Some(&(c, false));
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (c, protected) = chars[i];
        i += 1;
        if protected {
            toks.push(Tok::Lit(c));
            continue;
        }
        match c {
            b'[' => {
                let negate = is(i, b'!');
                let first = if negate { i + 1 } else { i };
                let closes = (first + 1..chars.len()).any(|j| is(j, b']'));
                if first >= chars.len() || !closes {
                    toks.push(Tok::Lit(b'['));
                    continue;
                }
                let mut items = Vec::new();
                let mut j = first;
                let mut c = chars[j];
                j += 1;
                loop {
                    if c == (b'[', false) && is(j, b':') {
                        let mut at_close = false;
                        while c == (b'[', false) && is(j, b':') {
                            match char_class(&chars, j) {
                                Class_::NotAClass => break,
                                Class_::Unknown => return None,
                                Class_::Found(class, after) => {
                                    items.push(Item::Class(class));
                                    j = after;
                                    c = chars.get(j).copied().unwrap_or((0, false));
                                    j += 1;
                                }
                            }
                        }
                        if c == (b']', false) {
                            at_close = true;
                        }
                        if at_close {
                            break;
                        }
                    }
                    if is(j, b'-') && chars.get(j + 1).is_some_and(|&n| n != (b']', false)) {
                        items.push(Item::Range(c.0, chars[j + 1].0));
                        j += 2;
                    } else {
                        items.push(Item::Byte(c.0));
                    }
                    match chars.get(j) {
                        Some(&n) => {
                            j += 1;
                            if n == (b']', false) {
                                break;
                            }
                            c = n;
                        }
                        // Cannot happen: a closing `]` was found above; stop all the same.
                        None => break,
                    }
                }
                i = j;
                toks.push(Tok::Set { negate, items });
            }
            b'?' => toks.push(Tok::One),
            b'*' => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
            }
            _ => toks.push(Tok::Lit(c)),
        }
    }
    Some(toks)
}

enum Class_ {
    NotAClass,
    Unknown,
    /// The class and the index just after its `:]`.
    Found(Class, usize),
}

/// glob.c `g_charclass` at `[:` (`at` is the index of the `:`).
fn char_class(chars: &[(u8, bool)], at: usize) -> Class_ {
    let start = at + 1;
    let Some(colon) = (start..chars.len()).find(|&k| chars[k] == (b':', false)) else {
        return Class_::NotAClass;
    };
    if chars.get(colon + 1) != Some(&(b']', false)) {
        return Class_::NotAClass;
    }
    let name: Vec<u8> = chars[start..colon].iter().map(|c| c.0).collect();
    match Class::named(&name) {
        Some(class) => Class_::Found(class, colon + 2),
        None => Class_::Unknown,
    }
}

fn is_magic(t: &Tok) -> bool {
    !matches!(t, Tok::Lit(_))
}

/// glob2() and glob3(): literal segments are appended, a segment with wildcards is matched
/// against its directory's entries (`.` and `..` included), the complete path is kept when
/// lstat(2) finds it.
fn walk(mut path: Vec<u8>, toks: &[Tok], found: &mut Vec<Vec<u8>>) {
    let mut rest = toks;
    loop {
        if rest.is_empty() {
            if std::fs::symlink_metadata(OsStr::from_bytes(&path)).is_ok() {
                found.push(path);
            }
            return;
        }
        let end = rest
            .iter()
            .position(|t| *t == Tok::Lit(b'/'))
            .unwrap_or(rest.len());
        let segment = &rest[..end];
        if segment.iter().any(is_magic) {
            let dir = if path.is_empty() {
                OsStr::new(".")
            } else {
                OsStr::from_bytes(&path)
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            let names = entries
                .flatten()
                .map(|e| e.file_name().into_vec())
                .chain([b".".to_vec(), b"..".to_vec()]);
            for name in names {
                if name.first() == Some(&b'.') && segment.first() != Some(&Tok::Lit(b'.')) {
                    continue;
                }
                if matches(&name, segment) {
                    let mut next = path.clone();
                    next.extend_from_slice(&name);
                    walk(next, &rest[end..], found);
                }
            }
            return;
        }
        for t in segment {
            if let Tok::Lit(b) = t {
                path.push(*b);
            }
        }
        rest = &rest[end..];
        while let Some(Tok::Lit(b'/')) = rest.first() {
            path.push(b'/');
            rest = &rest[1..];
        }
    }
}

/// glob.c `match`: one name against one segment, `*` by backtracking to the last star.
fn matches(name: &[u8], pat: &[Tok]) -> bool {
    let (mut n, mut p) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    loop {
        if p < pat.len() {
            let ok = match &pat[p] {
                Tok::Star => {
                    if p + 1 == pat.len() {
                        return true;
                    }
                    back = Some((p, n + 1));
                    p += 1;
                    continue;
                }
                Tok::One => n < name.len(),
                Tok::Lit(c) => name.get(n) == Some(c),
                Tok::Set { negate, items } => name.get(n).is_some_and(|&k| {
                    let hit = items.iter().any(|item| match *item {
                        Item::Byte(c) => c == k,
                        Item::Range(lo, hi) => lo <= k && k <= hi,
                        Item::Class(class) => class.has(k),
                    });
                    hit != *negate
                }),
            };
            if ok {
                n += 1;
                p += 1;
                continue;
            }
        } else if n == name.len() {
            return true;
        }
        match back {
            Some((star, resume)) if resume <= name.len() => {
                p = star + 1;
                n = resume;
                back = Some((star, resume + 1));
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, pattern: &str) -> bool {
        matches(name.as_bytes(), &compile(pattern.as_bytes()).unwrap())
    }

    #[test]
    fn matching() {
        assert!(m("abc", "a*c"));
        assert!(m("abc", "*"));
        assert!(m("", "*"));
        assert!(m("abc", "a**"));
        assert!(m("aXbXc", "a*b*c"));
        assert!(!m("ab", "a*c"));
        assert!(m("a.conf", "*.conf"));
        assert!(!m("a.conf.bak", "*.conf"));
        assert!(m("b", "[!a]"));
        assert!(m("^", "[^a]"));
        assert!(m("a", "[^a]"));
        assert!(!m("b", "[^a]"));
        assert!(m("k", "[a-z]"));
        assert!(m("-", "[a-]"));
        assert!(m("]", "[]]"));
        assert!(m("x", "[[:alpha:]]"));
        assert!(!m("1", "[[:alpha:]]"));
        assert!(m("1", "[[:alpha:][:digit:]]"));
        assert!(m("[", "["));
        assert!(m("[x", "[x"));
        assert!(m("*", "\\*"));
        assert!(!m("a", "\\*"));
        assert!(m("a\\", "a\\"));
        assert!(compile(b"[[:nope:]]").is_none());
    }
}
