//! The remote side of `tether check`: POSIX sh scripts that find the sshd serving the session
//! (its listener's pid, command line, executable) and print its config with `Include`s
//! inlined, and the parsers of what they print. tether's own lines start with a record
//! separator (`\x1e`), so the config text can never be mistaken for them.

/// Marks tether's own lines in the remote scripts' output.
pub const RS: char = '\u{1e}';

/// Finds the sshd serving this session and prints what the next step needs. It walks up from
/// the shell's parent with the shell's own `read` (a process's `comm`, an sshd's title, and
/// `PPid:`): the listener is the sshd whose title says `[listener]`, never a shell whose
/// command line holds this script (stop 59: the exec's sh, now the parent of the command's
/// bash, was taken for the listener, and `sshd -T` run as `/usr/bin/dash -T`);
/// every host runs it once per run (see `ssh/heartbeat.rs`), and with `tr`, `cat` and `sed`
/// at each step it started 11 programs on a lab host (sshd 9.2), 4 now. `read` drops the NULs
/// between the words of a command line (dash and bash alike), which is enough to find
/// `[listener]` in sshd's title; the listener's command line itself goes through `tr`.
const DISCOVER: &str = r#"RS=$(printf '\036')
p=$PPID; lpid=; spid=; n=0
while [ -n "$p" ] && [ "$p" -gt 1 ] 2>/dev/null && [ $n -lt 64 ]; do
  c=; IFS= read -r c 2>/dev/null </proc/$p/comm
  case $c in sshd|sshd-session)
    spid=$p
    c=; IFS= read -r c 2>/dev/null </proc/$p/cmdline
    case $c in *'[listener]'*) lpid=$p; break ;; esac ;;
  esac
  q=
  if [ -r /proc/$p/status ]; then
    while IFS= read -r c; do case $c in PPid:*) q=${c#PPid:}; break ;; esac; done </proc/$p/status
  fi
  p=${q#"${q%%[![:space:]]*}"}
  n=$((n+1))
done
if [ -n "$lpid" ]; then printf '%slistener %s\n' "$RS" "$lpid"; else lpid=$spid; fi
if [ -n "$lpid" ]; then
  printf '%spid %s\n' "$RS" "$lpid"
  printf '%scmdline %s\n' "$RS" "$(tr '\0' ' ' < /proc/$lpid/cmdline 2>/dev/null)"
  printf '%sexe %s\n' "$RS" "$(readlink /proc/$lpid/exe 2>/dev/null)"
fi
printf '%suid %s\n' "$RS" "$(id -u)"
printf '%suser %s\n' "$RS" "$(id -un)"
printf '%sconnection %s\n' "$RS" "$SSH_CONNECTION"
"#;

/// Prints a config file with its `Include`s inlined where they appear, as sshd reads them. A
/// file or glob this login cannot see into is said unreadable, not taken for absent: a path
/// under a directory it cannot search, a glob in a directory it cannot list (stop 58 tester
/// t93: `Include conf.d/*.conf` in a 0700 directory was read as nothing, "not set", while
/// sshd, as root, read the limit there). A glob whose directory it lists and that matches
/// nothing is absent, as for sshd.
const DUMP: &str = r#"RS=$(printf '\036')
dump() {
  [ "$2" -le 16 ] || return 0
  if [ ! -r "$1" ]; then printf '%sunreadable %s\n' "$RS" "$1"; return 0; fi
  printf '%sfile %s\n' "$RS" "$1"
  while IFS= read -r l || [ -n "$l" ]; do
    t=${l#"${l%%[![:space:]]*}"}
    case $t in
      [Ii][Nn][Cc][Ll][Uu][Dd][Ee][[:space:]=]*)
        args=${t#???????}
        args=${args#"${args%%[![:space:]=]*}"}
        for pat in $args; do
          case $pat in /*) ;; *) pat=/etc/ssh/$pat ;; esac
          for f in $pat; do
            if [ -e "$f" ]; then ( dump "$f" $(($2 + 1)) ); continue; fi
            d=${f%/*}
            while [ -n "$d" ] && [ ! -e "$d" ]; do d=${d%/*}; done
            u=
            if [ -n "$d" ] && [ ! -x "$d" ]; then u=1; fi
            case $f in *[][*?]*) [ "$d" = "${f%/*}" ] && [ ! -r "$d" ] && u=1 ;; esac
            if [ -n "$u" ]; then printf '%sunreadable %s\n' "$RS" "$f"; fi
          done
        done ;;
      *) printf '%s\n' "$l" ;;
    esac
  done < "$1"
  printf '%send-file\n' "$RS"
}
"#;

/// [`DISCOVER`], its programs found in `command::SYSTEM_PATH` first.
pub fn discover() -> String {
    format!("{}{DISCOVER}", crate::command::system_programs_first())
}

/// [`DUMP`], its programs found in `command::SYSTEM_PATH` first; its function `dump FILE 0`
/// follows.
pub fn dump() -> String {
    format!("{}{DUMP}", crate::command::system_programs_first())
}

/// What the discovery script found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// pid of the sshd listener (or of the topmost sshd found).
    pub pid: Option<u32>,
    /// Whether `pid` is a listener (`[listener]` in its title).
    pub listener: bool,
    /// Its command line.
    pub cmdline: String,
    /// Its executable.
    pub exe: Option<String>,
    /// Remote uid.
    pub uid: Option<u32>,
    /// Remote user name.
    pub user: String,
    /// `$SSH_CONNECTION`: client address, client port, server address, server port.
    pub connection: Vec<String>,
}

/// Parses the discovery script's output.
pub fn parse_discovery(text: &str) -> Discovery {
    let mut d = Discovery::default();
    for line in text.lines() {
        let Some(mark) = line.strip_prefix(RS) else {
            continue;
        };
        let (key, value) = mark.split_once(' ').unwrap_or((mark, ""));
        let value = value.trim();
        match key {
            "listener" => d.listener = true,
            "pid" => d.pid = value.parse().ok(),
            "cmdline" => d.cmdline = value.to_string(),
            "exe" if !value.is_empty() => {
                d.exe = Some(value.trim_end_matches(" (deleted)").to_string())
            }
            "uid" => d.uid = value.parse().ok(),
            "user" => d.user = value.to_string(),
            "connection" => d.connection = value.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    d
}

/// The `-f` argument of an sshd command line (`-f X`, `-fX`, `-Df X`); sshd rewrites its title
/// to `sshd: /usr/sbin/sshd -D -f X [listener] ...`, so words are separated by spaces.
pub fn config_from_cmdline(cmdline: &str) -> Option<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let Some(flags) = w.strip_prefix('-') else {
            continue;
        };
        if flags.starts_with('-') || flags.is_empty() {
            continue;
        }
        if let Some(pos) = flags.find('f') {
            // Only flags without arguments may come before `f` in one word.
            if !flags[..pos].chars().all(|c| "46DdeiqtTG".contains(c)) {
                continue;
            }
            let rest = &flags[pos + 1..];
            if !rest.is_empty() {
                return Some(rest.to_string());
            }
            return words.get(i + 1).map(|s| s.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_path_from_the_listener_title() {
        let t = "sshd: /usr/sbin/sshd -D -e -f /tmp/lab/hosts/h/sshd_config [listener] 0 of 10-100 startups";
        assert_eq!(
            config_from_cmdline(t).as_deref(),
            Some("/tmp/lab/hosts/h/sshd_config")
        );
        assert_eq!(
            config_from_cmdline("/usr/sbin/sshd -Df/etc/x").as_deref(),
            Some("/etc/x")
        );
        assert_eq!(
            config_from_cmdline("sshd -p 22 -Df /etc/y").as_deref(),
            Some("/etc/y")
        );
        assert_eq!(
            config_from_cmdline("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"),
            None
        );
        assert_eq!(config_from_cmdline("sshd -o f=1"), None);
    }

    #[test]
    fn discovery_output() {
        let d = parse_discovery(
            "\u{1e}listener 12\n\u{1e}pid 12\n\u{1e}cmdline sshd: /usr/sbin/sshd -D \n\
             \u{1e}exe /usr/sbin/sshd (deleted)\n\u{1e}uid 0\n\u{1e}user root\n\
             \u{1e}connection 10.0.0.1 5555 10.0.0.2 22\n",
        );
        assert_eq!(d.pid, Some(12));
        assert!(d.listener);
        assert_eq!(d.exe.as_deref(), Some("/usr/sbin/sshd"));
        assert_eq!(d.uid, Some(0));
        assert_eq!(d.connection.len(), 4);
    }
}
