//! A text about one host (what failed there, why it stopped) that knows where tether itself
//! wrote the host's name and its own durations, so that the texts of many hosts fold into one
//! headed by their set (`web[01-40]: ...`, see [`crate::hostset::fold`]) only where they say
//! the same. What a host printed or a recipe wrote is compared as it is: it is never searched
//! for names or durations, which it may hold as its own words (`cannot copy to web1`, `gave up
//! after 2 s`), and no bytes of it can pass for tether's marks.

use std::fmt;
use std::time::Duration;

use crate::duration::format as format_duration;

/// A host's text: its words, the places tether wrote a host's name in, and its own
/// durations. Shown (`Display`, JSON) as the words it stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostText {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Words as they are: tether's, a recipe's, a host's output.
    Text(String),
    /// A host's name, where tether wrote it (`web1: ...`, `on web1`).
    Host(String),
    /// How long something took, as tether measured it (`failed ... after 1.2 s`).
    Took(Duration),
}

impl HostText {
    /// An empty text.
    pub fn new() -> Self {
        HostText::default()
    }

    /// Followed by `words` as they are.
    pub fn text(mut self, words: &str) -> Self {
        self.push_str(words);
        self
    }

    /// Followed by the name of `host`, tether's mention of it.
    pub fn host(mut self, host: &str) -> Self {
        self.parts.push(Part::Host(host.to_string()));
        self
    }

    /// Followed by how long something took, as tether measured it.
    pub fn took(mut self, took: Duration) -> Self {
        self.parts.push(Part::Took(took));
        self
    }

    /// Followed by `more`, its marks kept.
    pub fn then(mut self, more: HostText) -> Self {
        for part in more.parts {
            match part {
                Part::Text(words) => self.push_str(&words),
                other => self.parts.push(other),
            }
        }
        self
    }

    /// The same text with each of its lines after the first indented by `by`: an inner
    /// step's failure under the host whose closure ran it.
    pub fn indented(mut self, by: &str) -> Self {
        for part in &mut self.parts {
            if let Part::Text(words) = part {
                *words = words.replace('\n', &format!("\n{by}"));
            }
        }
        self
    }

    /// The text after tether's own `HOST: ` at its start (a host's failure as it reads under
    /// that host's name); the whole text where it does not start so.
    pub fn after_host(&self, host: &str) -> String {
        match self.parts.as_slice() {
            [Part::Host(name), Part::Text(words), rest @ ..] if name == host => {
                match words.strip_prefix(": ") {
                    Some(words) => HostText {
                        parts: std::iter::once(Part::Text(words.to_string()))
                            .chain(rest.iter().cloned())
                            .collect(),
                    }
                    .to_string(),
                    None => self.to_string(),
                }
            }
            _ => self.to_string(),
        }
    }

    /// Appends `words` as they are.
    pub fn push_str(&mut self, words: &str) {
        if words.is_empty() {
            return;
        }
        match self.parts.last_mut() {
            Some(Part::Text(last)) => last.push_str(words),
            _ => self.parts.push(Part::Text(words.to_string())),
        }
    }

    /// Replaces every registered secret with the mask (see [`crate::secret::mask`]). A secret
    /// that only the whole text shows (one that runs across a host's name or a duration)
    /// makes it plain words, masked as a whole: it no longer folds, but shows nothing.
    pub fn mask(&mut self) {
        let whole = self.to_string();
        let std::borrow::Cow::Owned(masked) = crate::secret::mask(&whole) else {
            return;
        };
        let mut parts = HostText::new();
        for part in &self.parts {
            match part {
                Part::Text(words) => parts.push_str(&crate::secret::mask(words)),
                Part::Host(name) => match crate::secret::mask(name) {
                    std::borrow::Cow::Borrowed(_) => parts = parts.host(name),
                    std::borrow::Cow::Owned(name) => parts.push_str(&name),
                },
                Part::Took(d) => parts = parts.took(*d),
            }
        }
        *self = match parts.to_string() == masked {
            true => parts,
            false => HostText::from(masked),
        };
    }

    /// What decides whether `host`'s text folds with another host's: its words, with the
    /// places tether wrote `host`'s own name and its durations marked; a name of another
    /// host is words like any other.
    fn key(&self, host: &str) -> Vec<Key> {
        let mut key: Vec<Key> = Vec::new();
        for part in &self.parts {
            let words = match part {
                Part::Host(name) if name == host => {
                    key.push(Key::Own);
                    continue;
                }
                Part::Took(_) => {
                    key.push(Key::Took);
                    continue;
                }
                Part::Text(words) | Part::Host(words) => words,
            };
            match key.last_mut() {
                Some(Key::Words(last)) => last.push_str(words),
                _ => key.push(Key::Words(words.clone())),
            }
        }
        key
    }

    /// The durations of the text, in order.
    fn durations(&self) -> impl Iterator<Item = Duration> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Took(d) => Some(*d),
            _ => None,
        })
    }
}

/// A part of a [`HostText`]'s fold key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Words(String),
    /// The host's own name, where tether wrote it.
    Own,
    /// A duration tether measured.
    Took,
}

impl From<String> for HostText {
    /// Plain words: a text that says nothing of where tether named the host folds only with
    /// the very same words.
    fn from(words: String) -> Self {
        HostText::new().text(&words)
    }
}

impl From<&str> for HostText {
    fn from(words: &str) -> Self {
        HostText::new().text(words)
    }
}

/// What follows a jump host's name in the name its events and lines carry (`bastion (jump)`),
/// so that it never reads as a host of the recipe.
pub const JUMP_LABEL: &str = " (jump)";

/// A host's name as tether writes it alone, as a host set writes it: one holding nodeset
/// syntax (`web[1]`) in quotes, so that it never reads as another host (stop 61 tester t103:
/// `web[1]: ... failed` of the host `web[1]`, where `web1` is another); a jump host's label
/// (`bastion (jump)`, see `ssh::jump`) is its name so written, then the label's word.
pub fn named(host: &str) -> String {
    let (name, label) = match host.strip_suffix(JUMP_LABEL) {
        Some(name) => (name, JUMP_LABEL),
        None => (host, ""),
    };
    // Every output line's prefix asks: a plain name (nearly all) is itself, no set built.
    match crate::hostset::quoted(name) {
        true => format!("{}{label}", crate::hostset::fold(&[name])),
        false => host.to_string(),
    }
}

/// Hosts as tether writes them together, as [`named`] writes one: a set as
/// [`crate::hostset::fold`] writes it, then the jump hosts' names (`bastion (jump)`) folded
/// apart, each part of their set with the label after it (`good,b[1-2] (jump),x (jump)`):
/// never quoted for the label's space and parentheses, and never read as a label of the whole
/// set (stop 63 tester t104: `bastion,web[1-2],bastion,web10 (jump)`, where the first
/// `bastion` is a host of the recipe and the second a jump host).
pub fn set<S: AsRef<str>>(hosts: &[S]) -> String {
    let (mut plain, mut jumps) = (Vec::new(), Vec::new());
    for host in hosts {
        let host = host.as_ref();
        match host.strip_suffix(JUMP_LABEL) {
            Some(name) => jumps.push(name),
            None => plain.push(host),
        }
    }
    let mut parts = crate::hostset::fold_parts(&plain);
    parts.extend(
        crate::hostset::fold_parts(&jumps)
            .into_iter()
            .map(|part| format!("{part}{JUMP_LABEL}")),
    );
    parts.join(",")
}

impl fmt::Display for HostText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(words) => f.write_str(words)?,
                Part::Host(name) => f.write_str(&named(name))?,
                Part::Took(d) => f.write_str(&format_duration(*d))?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for HostText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Per-host texts (`host`, `text`) grouped: hosts whose texts say the same, but for where
/// tether wrote each one's own name and for its durations, share one text in which the
/// names are their set (`web[01-40]: \`x\` failed with exit status 1 after 1.2 s–3.0 s`) and
/// each duration the range of theirs; a text only one host has is kept as it is. So each
/// host's text, its name for the set and its durations for the range, is the text it has
/// on its own. In the order the texts first appear. A text showing `\xNN` or `\u{..}` is
/// never shared, as a host's output line showing one is never folded.
pub fn group<S: AsRef<str>>(items: &[(S, &HostText)]) -> Vec<(Vec<String>, String)> {
    // key -> (hosts, their texts)
    let mut groups: Vec<(Vec<Key>, Vec<String>, Vec<&HostText>)> = Vec::new();
    for (host, text) in items {
        let host = host.as_ref();
        let key = text.key(host);
        // A text that may show other bytes than it says stands alone (see
        // `chars::shows_escapes`).
        let alone = crate::chars::shows_escapes(&text.to_string());
        match groups
            .iter_mut()
            .find(|(k, _, _)| *k == key)
            .filter(|_| !alone)
        {
            Some((_, hosts, texts)) => {
                hosts.push(host.to_string());
                texts.push(text);
            }
            None => groups.push((key, vec![host.to_string()], vec![text])),
        }
    }
    groups
        .into_iter()
        .map(|(key, hosts, texts)| {
            let text = match texts.as_slice() {
                [one] => one.to_string(),
                _ => folded(&key, &hosts, &texts),
            };
            (hosts, text)
        })
        .collect()
}

/// [`group`]'s texts only.
pub fn fold<S: AsRef<str>>(items: &[(S, &HostText)]) -> Vec<String> {
    group(items).into_iter().map(|(_, text)| text).collect()
}

/// The text of `key` for `hosts`, whose texts are `texts`: their set for the host's name,
/// the range of their durations for each.
fn folded(key: &[Key], hosts: &[String], texts: &[&HostText]) -> String {
    let set = set(hosts);
    let mut durations: Vec<_> = texts.iter().map(|t| t.durations()).collect();
    let mut out = String::new();
    for part in key {
        match part {
            Key::Words(words) => out.push_str(words),
            Key::Own => out.push_str(&set),
            Key::Took => {
                // Every text of the key has a duration here, in the same order.
                let took: Vec<Duration> = durations.iter_mut().filter_map(Iterator::next).collect();
                let least = took.iter().min().copied().map(format_duration);
                let most = took.iter().max().copied().map(format_duration);
                match (least, most) {
                    (Some(a), Some(b)) if a != b => out.push_str(&format!("{a}–{b}")),
                    (a, _) => out.push_str(&a.unwrap_or_default()),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A host's name is written as a host set writes it: one holding nodeset syntax in
    /// quotes, any other as it is (stop 61 tester t103: `web[1]: ... failed` read as `web1`).
    #[test]
    fn a_name_that_reads_as_a_host_set_is_quoted() {
        let said = HostText::new().host("web[1]").text(": failed").to_string();
        assert_eq!(said, "\"web[1]\": failed");
        assert_eq!(named("bastion (jump)"), "bastion (jump)");
        assert_eq!(named("b[1] (jump)"), "\"b[1]\" (jump)");
        for name in [
            "web01",
            "web007",
            "db-1.example.com",
            "10.0.0.1",
            "h1x2",
            "127.0.0.1:2222",
            "a",
            "web1-eu2",
        ] {
            assert_eq!(HostText::new().host(name).to_string(), name);
        }
    }

    /// Jump hosts in a set keep their label outside any quotes, as alone (a summary row of a
    /// bastion that never connected read `"bastion (jump)"`).
    #[test]
    fn a_set_writes_jump_hosts_as_their_names_then_the_label() {
        assert_eq!(set(&["bastion (jump)"]), "bastion (jump)");
        assert_eq!(set(&["b1 (jump)", "b2 (jump)"]), "b[1-2] (jump)");
        assert_eq!(set(&["web2", "web1", "b1 (jump)"]), "web[1-2],b1 (jump)");
        assert_eq!(set(&["b[1] (jump)", "x"]), "x,\"b[1]\" (jump)");
        // Each part of the jump hosts' set has its label; a host of the recipe and a jump host
        // of one name are two.
        assert_eq!(
            set(&[
                "bastion (jump)",
                "web10 (jump)",
                "web010 (jump)",
                "bastion",
                "web1"
            ]),
            "bastion,web1,bastion (jump),web[10,010] (jump)"
        );
        assert_eq!(
            set(&["web01", "web02"]),
            crate::hostset::fold(&["web01", "web02"])
        );
        assert_eq!(set::<&str>(&[]), "");
    }

    #[test]
    fn after_host_drops_only_tethers_own_host_prefix() {
        let t = HostText::new()
            .host("web1")
            .text(": `ln` failed after ")
            .took(ms(1500))
            .text("\n  web1: said by the host");
        assert_eq!(
            t.after_host("web1"),
            "`ln` failed after 1.5 s\n  web1: said by the host"
        );
        assert_eq!(t.after_host("web2"), t.to_string());
        // A host's own words that look like the prefix are not tether's.
        let said = HostText::new().text("web1: disk full");
        assert_eq!(said.after_host("web1"), "web1: disk full");
    }

    /// `host: \`command\` failed with exit status 3 after TOOK` and a stderr tail, as
    /// `outcome::failure_text` writes it.
    fn failed(host: &str, command: &str, took: Duration, stderr: &str) -> HostText {
        HostText::new()
            .host(host)
            .text(&format!(": `{command}` failed with exit status 3 after "))
            .took(took)
            .text(&format!("\n  stderr (last lines):\n    {stderr}"))
    }

    fn fold_all(items: &[(&str, HostText)]) -> Vec<String> {
        let refs: Vec<(&str, &HostText)> = items.iter().map(|(h, t)| (*h, t)).collect();
        fold(&refs)
    }

    /// Texts that may show other bytes than they say (`\xff` for the byte 0xff, or the text
    /// `\xff`) are never shared (stop 67 tester t116: `host[1-2]: ... E\xff`).
    #[test]
    fn texts_showing_escapes_stand_alone() {
        for stderr in ["E\\xff", "\\x1b[2J", "a\\u{200b}b"] {
            assert_eq!(
                fold_all(&[
                    ("a", failed("a", "x", ms(5), stderr)),
                    ("b", failed("b", "x", ms(5), stderr))
                ]),
                [
                    format!("a: `x` failed with exit status 3 after 5.0 ms\n  stderr (last lines):\n    {stderr}"),
                    format!("b: `x` failed with exit status 3 after 5.0 ms\n  stderr (last lines):\n    {stderr}"),
                ],
                "{stderr}"
            );
        }
    }

    #[test]
    fn tethers_names_and_durations_fold_into_a_set_and_a_range() {
        let items: Vec<(String, HostText)> = (1..=12)
            .map(|i| {
                let host = format!("web{i:02}");
                let text = match i {
                    5 => failed(&host, "make", ms(1000), "no rule"),
                    _ => failed(&host, "make", ms(i * 10), "broke"),
                };
                (host, text)
            })
            .collect();
        let refs: Vec<(&str, &HostText)> = items.iter().map(|(h, t)| (h.as_str(), t)).collect();
        assert_eq!(
            fold(&refs),
            [
                "web[01-04,06-12]: `make` failed with exit status 3 after 10.0 ms–120.0 ms\n  \
                 stderr (last lines):\n    broke",
                "web05: `make` failed with exit status 3 after 1.0 s\n  stderr (last lines):\n    \
                 no rule",
            ]
        );
        // One duration for all: said once. A lone text is as it is.
        assert_eq!(
            fold_all(&[
                ("a", failed("a", "x", ms(5), "e")),
                ("b", failed("b", "x", ms(5), "e"))
            ]),
            ["a,b: `x` failed with exit status 3 after 5.0 ms\n  stderr (last lines):\n    e"]
        );
        // Its name as a set writes it (stop 61 tester t103: unquoted, it read as `web1`).
        assert_eq!(
            fold_all(&[("web[1]", failed("web[1]", "x", ms(5), "e"))]),
            ["\"web[1]\": `x` failed with exit status 3 after 5.0 ms\n  stderr (last lines):\n    e"]
        );
        // Another host's name that tether wrote is words: folds only with the same name.
        let lost = |host: &str, inner: &str| {
            HostText::new()
                .host(host)
                .text(": 1 of 1 hosts failed\n")
                .then(failed(inner, "x", ms(3), "e"))
        };
        assert_eq!(
            fold_all(&[
                ("web2", lost("web2", "web1")),
                ("web3", lost("web3", "web1")),
                ("web4", lost("web4", "web4")),
                ("web5", lost("web5", "web5")),
            ]),
            [
                "web[2-3]: 1 of 1 hosts failed\nweb1: `x` failed with exit status 3 after 3.0 ms\
                 \n  stderr (last lines):\n    e",
                "web[4-5]: 1 of 1 hosts failed\nweb[4-5]: `x` failed with exit status 3 after \
                 3.0 ms\n  stderr (last lines):\n    e",
            ]
        );
    }

    /// The words a recipe or a host wrote are never cut or rewritten, and fold only when they
    /// are the same (fresh-eyes findings: `fail("gave up after " + wait)` on three hosts was
    /// `host[1-3]: gave up`; each host's `cannot copy to` and its name was `cannot copy to
    /// host[1-4]`; a host printing the fold's placeholder `\0host\0` folded with the others).
    #[test]
    fn a_recipes_and_a_hosts_words_are_never_cut_or_rewritten() {
        let said = |host: &str, words: &str| HostText::new().host(host).text(": ").text(words);
        // Durations the recipe wrote, at the end and in the middle.
        for (a, b, c) in [
            (
                "gave up after 2 s",
                "gave up after 3m05s",
                "gave up after 45.0 ms",
            ),
            (
                "after 2 s, retrying",
                "after 3m05s, retrying",
                "after 1.0 ms, retrying",
            ),
        ] {
            assert_eq!(
                fold_all(&[
                    ("host1", said("host1", a)),
                    ("host2", said("host2", b)),
                    ("host3", said("host3", c)),
                ]),
                [
                    format!("host1: {a}"),
                    format!("host2: {b}"),
                    format!("host3: {c}")
                ]
            );
        }
        assert_eq!(
            fold_all(&[
                ("host1", said("host1", "gave up after 2 s")),
                ("host2", said("host2", "gave up after 2 s")),
            ]),
            ["host[1-2]: gave up after 2 s"]
        );
        // A host's name in its own words is its words.
        let named: Vec<(&str, HostText)> = ["web1", "web2", "web10", "web11"]
            .into_iter()
            .map(|h| (h, failed(h, "cp", ms(2), &format!("cannot copy to {h}"))))
            .collect();
        let out = fold_all(&named);
        assert_eq!(out.len(), 4, "{out:?}");
        for (text, (host, _)) in out.iter().zip(&named) {
            assert!(text.starts_with(&format!("{host}: `cp`")), "{text}");
            assert!(text.ends_with(&format!("cannot copy to {host}")), "{text}");
        }
        // The same words fold, though they name one of the hosts (`web1`, which begins
        // `web10`), and the name stays.
        let primary: Vec<(&str, HostText)> = ["web1", "web2", "web10"]
            .into_iter()
            .map(|h| (h, said(h, "web1 is the primary")))
            .collect();
        assert_eq!(fold_all(&primary), ["web[1-2,10]: web1 is the primary"]);
        // Bytes that look like a mark are words: they fold only with the same bytes.
        for forged in ["\0host\0", "\u{0}web2\u{0}", "\0", "web1"] {
            let out = fold_all(&[
                ("web1", said("web1", &format!("cannot copy to {forged}"))),
                ("web2", said("web2", "cannot copy to web2")),
                ("web3", said("web3", &format!("cannot copy to {forged}"))),
            ]);
            assert_eq!(
                out,
                [
                    format!("web[1,3]: cannot copy to {forged}"),
                    "web2: cannot copy to web2".to_string()
                ]
            );
        }
        // Words and tether's marks never stand for each other: plain words that read as
        // another host's text do not fold with it.
        assert_eq!(
            fold_all(&[
                ("a", said("a", "down")),
                ("b", HostText::from("b: down")),
                ("c", HostText::new().text("c: took ").took(ms(1))),
                ("d", HostText::from("d: took 1.0 ms")),
            ]),
            ["a: down", "b: down", "c: took 1.0 ms", "d: took 1.0 ms"]
        );
        // The same words fold, whichever host they name.
        assert_eq!(
            fold_all(&[
                ("web1", said("web1", "cannot copy to web2")),
                ("web2", said("web2", "cannot copy to web2")),
            ]),
            ["web[1-2]: cannot copy to web2"]
        );
    }

    /// Each host's text, expanded back from its group (the set for its name, its duration
    /// for the range), is its own.
    #[test]
    fn a_group_expanded_back_is_each_hosts_own_text() {
        let hosts = ["web1", "web2", "web10", "web11", "db1"];
        let texts = [
            |h: &str| HostText::new().host(h).text(": down"),
            |h: &str| {
                HostText::new()
                    .host(h)
                    .text(": down, ")
                    .host(h)
                    .text(" said so")
            },
            |h: &str| {
                HostText::new()
                    .text("`x` on ")
                    .host(h)
                    .text(" after ")
                    .took(ms(7))
            },
            |h: &str| HostText::from(format!("{h}: plain")),
            |h: &str| HostText::new().host(h).text(": web1 and web10"),
        ];
        for make in texts {
            let items: Vec<(&str, HostText)> = hosts.iter().map(|h| (*h, make(h))).collect();
            let refs: Vec<(&str, &HostText)> = items.iter().map(|(h, t)| (*h, t)).collect();
            for (members, text) in group(&refs) {
                let set = crate::hostset::fold(&members);
                for host in &members {
                    let own = make(host).to_string();
                    let back = match members.len() {
                        1 => text.clone(),
                        _ => text.replace(&set, host),
                    };
                    assert_eq!(back, own, "{members:?}");
                }
            }
        }
    }

    #[test]
    fn shown_and_masked_as_its_words() {
        let text = HostText::new()
            .host("w1")
            .text(": pw=hunter-Fx7 ")
            .took(ms(2));
        assert_eq!(text.to_string(), "w1: pw=hunter-Fx7 2.0 ms");
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            "\"w1: pw=hunter-Fx7 2.0 ms\""
        );
        crate::secret::register("hunter-Fx7");
        let mut masked = text.clone();
        masked.mask();
        assert_eq!(masked.to_string(), "w1: pw=******** 2.0 ms");
        // Still folds by its marks.
        let mut other = HostText::new()
            .host("w2")
            .text(": pw=hunter-Fx7 ")
            .took(ms(9));
        other.mask();
        assert_eq!(
            fold(&[("w1", &masked), ("w2", &other)]),
            ["w[1-2]: pw=******** 2.0 ms–9.0 ms"]
        );
    }
}
