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

/// Says which of the config files given after the listener's pid (`$1`) and its `PidFile`
/// (`$2`, or `none`) changed after that sshd last read them: when it wrote its pid file, where
/// that file holds its pid (sshd writes it as it starts, and again when SIGHUP re-executes it
/// to re-read its config), else when its process started (`/proc`: a SIGHUP since is not seen
/// there). sshd reads its config only then (a connection's sshd gets the listener's copy), so
/// a file changed since is not in force until a reload. Prints `since EPOCH HOW` (`pidfile` or
/// `start`), then `newer EPOCH FILE` for each file changed more than a second after it (the
/// boot time `/proc` counts from is whole seconds).
const NEWER: &str = r#"RS=$(printf '\036')
pid=$1; pidfile=$2; shift 2
since=; how=
if [ "$pidfile" != none ] && [ -f "$pidfile" ] && read -r p 2>/dev/null <"$pidfile" && [ "$p" = "$pid" ]; then
  since=$(date -r "$pidfile" +%s 2>/dev/null) && how=pidfile
fi
if [ -z "$how" ] && [ -r /proc/$pid/stat ] && [ -r /proc/stat ]; then
  st=$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f20)
  bt=$(sed -n 's/^btime //p' /proc/stat)
  hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
  case $st$bt$hz in *[!0-9]*|'') ;; *) since=$((bt + st / hz)); how=start ;; esac
fi
[ -n "$how" ] || exit 0
printf '%ssince %s %s\n' "$RS" "$since" "$how"
for f in "$@"; do
  m=$(date -r "$f" +%s 2>/dev/null) || continue
  [ "$m" -gt $((since + 1)) ] && printf '%snewer %s %s\n' "$RS" "$m" "$f"
done
exit 0
"#;

/// [`NEWER`], its programs found in `command::SYSTEM_PATH` first; the listener's pid, its
/// `PidFile` and the config files follow as its arguments.
pub fn newer() -> String {
    format!("{}{NEWER}", crate::command::system_programs_first())
}

/// What [`NEWER`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newer {
    /// When the listener last read its config, in seconds since the epoch.
    pub since: u64,
    /// How that is known: `pidfile` or `start`.
    pub how: String,
    /// The files changed since, each with when (seconds since the epoch).
    pub changed: Vec<(u64, String)>,
}

/// Parses [`NEWER`]'s output; `None` where it could not tell when sshd read its config.
pub fn parse_newer(text: &str) -> Option<Newer> {
    let mut since = None;
    let mut files = Vec::new();
    for line in text.lines() {
        let Some(mark) = line.strip_prefix(RS) else {
            continue;
        };
        if let Some(rest) = mark.strip_prefix("since ") {
            let (at, how) = rest.split_once(' ')?;
            since = Some((at.parse().ok()?, how.to_string()));
        } else if let Some(rest) = mark.strip_prefix("newer ") {
            let (at, file) = rest.split_once(' ')?;
            files.push((at.parse().ok()?, file.to_string()));
        }
    }
    since.map(|(since, how)| Newer {
        since,
        how,
        changed: files,
    })
}

/// The OpenSSH version (major, minor) in what `sshd -V` prints (`OpenSSH_9.2, OpenSSL ...`; an
/// sshd without `-V` prints it in its usage); `None` where none is named.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find("OpenSSH_")? + "OpenSSH_".len()..];
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

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
    fn version_output() {
        assert_eq!(
            parse_version("OpenSSH_9.2, OpenSSL 3.0.19 27 Jan 2026\n"),
            Some((9, 2))
        );
        assert_eq!(
            parse_version("unknown option -- V\nOpenSSH_10.0p2 Debian-5"),
            Some((10, 0))
        );
        assert_eq!(parse_version("sshd: command not found"), None);
    }

    #[test]
    fn newer_output() {
        let n = parse_newer(
            "\u{1e}since 100 pidfile\n\u{1e}newer 105 /etc/ssh/sshd_config.d/a b.conf\n",
        )
        .unwrap();
        assert_eq!((n.since, n.how.as_str()), (100, "pidfile"));
        assert_eq!(
            n.changed,
            [(105, "/etc/ssh/sshd_config.d/a b.conf".to_string())]
        );
        // Nothing known of when sshd read its config: nothing to say.
        assert_eq!(parse_newer("\u{1e}newer 105 /x\n"), None);
        assert_eq!(parse_newer("\u{1e}since x start\n"), None);
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
