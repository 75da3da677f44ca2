//! The source files import each other in one direction only: the graph of `crate::`, `super::`
//! and child-module paths between the files under `src/` has no cycle (a cycle is printed with
//! the path that closes it); and README.md's code map names every source file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module path of a file under `src/` (`ssh/worker.rs` -> `["ssh", "worker"]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file that defines the longest prefix of `path` (a module path from the crate root).
fn file_for(src: &Path, path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let base = src.join(path[..n].join("/"));
        for candidate in [base.with_extension("rs"), base.join("mod.rs")] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The text of a file without its `#[cfg(test)]` part and without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths (from the crate root) a file of module `module` refers to: `crate::a::b`,
/// `super::c` (`super` is the parent of the file's own module, for `x.rs` and `x/mod.rs`
/// alike), and `child::d` for the modules it declares itself.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let children: BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub mod ").or(l.strip_prefix("mod ")))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_string)
        .collect();
    let chars: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        // A path starts at an identifier that does not continue another one or a path.
        if !ident(chars[i]) || (i > 0 && (ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut segs: Vec<String> = Vec::new();
        loop {
            let s = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            segs.push(chars[s..i].iter().collect());
            let more = i + 2 < chars.len()
                && chars[i] == ':'
                && chars[i + 1] == ':'
                && ident(chars[i + 2]);
            if !more {
                break;
            }
            i += 2;
        }
        // `use a::{b, c}` refers to `a` itself at least (a one-segment path only this way:
        // `worker::{Request, State}` hid a cycle, found when it became `worker::State`).
        let group = chars.get(i..i + 3) == Some(&[':', ':', '{'][..]);
        if segs.len() < 2 && !group {
            continue;
        }
        let resolved = match segs[0].as_str() {
            "crate" | "tether" => Some(segs[1..].to_vec()),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                let mut p = module[..module.len().saturating_sub(ups)].to_vec();
                p.extend(segs[ups..].iter().cloned());
                Some(p)
            }
            c if children.contains(c) => {
                let mut p = module.to_vec();
                p.extend(segs.iter().cloned());
                Some(p)
            }
            _ => None,
        };
        out.extend(resolved);
    }
    out
}

/// Every `.rs` file under `src/`, depth first.
fn source_files(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files
}

/// README.md's code map (its `| layer | files |` table) names every file under `src/` but unit
/// tests (by its file name, and each directory above it as `dir/`), and every `*.rs` name in it is a file
/// that exists: the map a newcomer reads is the tree they find.
#[test]
fn the_readme_code_map_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("| layer | files |")
        .expect("README.md has the code map table `| layer | files |`");
    let map = readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    let src = root.join("src");
    let files = source_files(&src);
    let mut unnamed = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy();
        // Unit tests kept beside their module are part of it, not a concept of their own.
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let dirs: Vec<String> = rel
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .map(|c| format!("{}/", c.as_os_str().to_string_lossy()))
            .collect();
        if !map.contains(name.as_ref()) || dirs.iter().any(|d| !map.contains(d.as_str())) {
            unnamed.push(rel.display().to_string());
        }
    }
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let stale: Vec<&str> = map
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.ends_with(".rs") && !names.contains(*w))
        .collect();
    unnamed.sort();
    assert!(
        unnamed.is_empty() && stale.is_empty(),
        "README.md's code map does not match src/: files it does not name: {unnamed:?}; names it \
         gives that are no file: {stale:?}"
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = source_files(&src);
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy();
        if name == "lib.rs" || name == "main.rs" {
            continue;
        }
        let module = module_of(rel);
        let text = code(&std::fs::read_to_string(f).unwrap());
        let mut deps = BTreeSet::new();
        for path in references(&module, &text) {
            if let Some(target) = file_for(&src, &path) {
                let tname = target.file_name().unwrap().to_string_lossy().into_owned();
                if &target != f && tname != "lib.rs" && tname != "main.rs" {
                    deps.insert(target);
                }
            }
        }
        graph.insert(f.clone(), deps);
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        path: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let i = path.iter().position(|p| p == node).unwrap_or(0);
                let mut cycle = path[i..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.clone(), 1);
        path.push(node.clone());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut state, &mut Vec::new()) {
            let names: Vec<String> = cycle
                .iter()
                .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
                .collect();
            panic!("import cycle: {}", names.join(" -> "));
        }
    }
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(edges > 150, "found only {edges} imports");
    assert!(graph.len() > 30, "read only {} files", graph.len());
}

#[test]
fn paths_resolve_to_the_modules_they_name() {
    let module = vec!["recipe".to_string(), "on".to_string()];
    let text = "mod inner;\nuse super::context::Runtime;\nuse crate::pool::FanOut;\nfn f() { tether::ssh::exec::run(); inner::g(); super::super::x::y(); }";
    let refs = references(&module, text);
    let names: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        names,
        [
            "recipe::context::Runtime",
            "pool::FanOut",
            "ssh::exec::run",
            "recipe::on::inner::g",
            "x::y"
        ]
    );
    assert_eq!(code("a // crate::x::y\n#[cfg(test)]\nuse crate::z;"), "a ");
}

/// The top-level modules README.md's code map puts in each layer, from the top (the command
/// line) down (the leaves): a row's text outside parentheses names them (`run.rs`,
/// `runner/`), or the row is one directory's (`` `ssh/`: ... ``).
fn layers(readme: &str) -> Vec<(String, BTreeSet<String>)> {
    let start = readme
        .find("| layer | files |")
        .expect("README.md has the code map table `| layer | files |`");
    let mut rows = Vec::new();
    for line in readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (layer, files) = (cells[1], cells[2]);
        let mut outside = String::new();
        let mut depth = 0usize;
        for c in files.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                c if depth == 0 => outside.push(c),
                _ => {}
            }
        }
        let names: Vec<String> = outside
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|n| n.trim_start_matches("src/").to_string())
            .collect();
        let modules = match names.first() {
            Some(dir) if dir.ends_with('/') && outside.contains(&format!("`{dir}`:")) => {
                BTreeSet::from([dir.trim_end_matches('/').to_string()])
            }
            _ => names
                .iter()
                .map(|n| n.trim_end_matches('/').trim_end_matches(".rs").to_string())
                .collect(),
        };
        rows.push((layer.to_string(), modules));
    }
    rows
}

/// Every file imports only from its own layer of README.md's code map or from layers below
/// it (stop 50 tester t71: `sshd/` and `ssh/`, `host.rs` and `ssh/config/`, each imported the
/// other, and `backend/` imported `outcome.rs`, above it), and every top-level module is in
/// one layer.
#[test]
fn every_file_imports_from_its_own_layer_or_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let rows = layers(&readme);
    assert!(rows.len() >= 5, "read only {} layers: {rows:?}", rows.len());
    let src = root.join("src");
    let layer_of = |rel: &Path| -> Option<usize> {
        let top = module_of(rel).into_iter().next()?;
        rows.iter().position(|(_, modules)| modules.contains(&top))
    };
    let mut wrong = Vec::new();
    for f in source_files(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy();
        if name == "lib.rs" || name == "main.rs" {
            continue;
        }
        let Some(own) = layer_of(rel) else {
            wrong.push(format!("{}: in no layer", rel.display()));
            continue;
        };
        let text = code(&std::fs::read_to_string(&f).unwrap());
        for path in references(&module_of(rel), &text) {
            let Some(target) = file_for(&src, &path) else {
                continue;
            };
            let trel = target.strip_prefix(&src).unwrap();
            if trel == Path::new("lib.rs") || trel == Path::new("main.rs") {
                continue;
            }
            match layer_of(trel) {
                Some(layer) if layer >= own => {}
                Some(layer) => wrong.push(format!(
                    "{} ({}) imports {} ({})",
                    rel.display(),
                    rows[own].0,
                    trel.display(),
                    rows[layer].0
                )),
                None => {}
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
