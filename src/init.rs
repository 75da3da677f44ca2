//! `tether init [--template rails|node|php|static]`: writes a commented starting recipe
//! (`deploy.rhai`) and its stage files (`deploy/production.rhai`, `deploy/staging.rhai`) for
//! one kind of app, on top of the embedded stdlib, as `cap install` and `dep init` do. It never
//! overwrites: when any of the files exists, nothing is written.
//!
//! The texts live in `templates/` (embedded in the binary); `{{application}}` becomes the
//! recipe directory's name and `{{servers}}` each stage's `server(...)` lines.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::settings::{Format, Settings};

/// The kind of app a recipe is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    /// Bundler, migrations, assets (stdlib `rails`), puma restarted by `systemd`.
    Rails,
    /// `npm ci` and `npm run build` (stdlib `node`), the app restarted by `systemd`.
    Node,
    /// Composer (stdlib `php`), php-fpm restarted by `systemd`.
    Php,
    /// Files only: the `deploy` flow alone, the copy strategy shown for a site built locally.
    #[default]
    Static,
}

impl Template {
    /// The name `--template` takes.
    pub fn name(self) -> &'static str {
        match self {
            Template::Rails => "rails",
            Template::Node => "node",
            Template::Php => "php",
            Template::Static => "static",
        }
    }

    fn recipe(self) -> &'static str {
        match self {
            Template::Rails => include_str!("../templates/rails.rhai"),
            Template::Node => include_str!("../templates/node.rhai"),
            Template::Php => include_str!("../templates/php.rhai"),
            Template::Static => include_str!("../templates/static.rhai"),
        }
    }

    /// The roles of the first host of a stage (the primary one), then of another host.
    fn roles(self) -> (&'static str, &'static str) {
        match self {
            Template::Rails => (r#"["web", "app", "db"]"#, r#"["web", "app"]"#),
            Template::Node => (r#"["web", "app"]"#, r#"["web", "app"]"#),
            Template::Php => (r#"["web", "db"]"#, r#"["web"]"#),
            Template::Static => (r#"["web"]"#, r#"["web"]"#),
        }
    }
}

const PRODUCTION: &str = include_str!("../templates/production.rhai");
const STAGING: &str = include_str!("../templates/staging.rhai");

/// The application name put into the recipe: the recipe directory's name when it is one plain
/// path component of letters, digits, `.`, `_` and `-` (what stdlib/deploy accepts and a
/// shell needs no quotes for), else `app`.
fn application_name(dir: &Path) -> String {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            !n.starts_with('.')
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
        .unwrap_or("app")
        .to_string()
}

/// The files `init` writes for `template`, recipe at `recipe`: (path, text), the recipe first.
pub fn files(recipe: &Path, template: Template) -> Vec<(PathBuf, String)> {
    // Beside the recipe; `deploy/...` rather than `./deploy/...` for a recipe named alone.
    let dir = recipe.parent().unwrap_or(Path::new(""));
    let application = application_name(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    });
    let stages = dir.join("deploy");
    let (first, other) = template.roles();
    let production = format!(
        "server(\"deploy@web1.example.com\", #{{ roles: {first}, primary: true }});\n\
         // server(\"deploy@web2.example.com\", #{{ roles: {other} }});"
    );
    let staging =
        format!("server(\"deploy@staging.example.com\", #{{ roles: {first}, primary: true }});");
    vec![
        (
            recipe.to_path_buf(),
            template.recipe().replace("{{application}}", &application),
        ),
        (
            stages.join("production.rhai"),
            PRODUCTION.replace("{{servers}}", &production),
        ),
        (
            stages.join("staging.rhai"),
            STAGING.replace("{{servers}}", &staging),
        ),
    ]
}

/// Writes the recipe `settings.recipe` (`-f`, default `deploy.rhai`) and its stage files for
/// `template`, then prints what it wrote (text, or one `init` JSON object).
///
/// Errors: [`Error::Usage`] (exit 2) naming the first file that already exists (then nothing
/// is written), or a file that cannot be created or written.
pub fn run(settings: &Settings, template: Template) -> Result<(), Error> {
    let files = files(&settings.recipe, template);
    if let Some((path, _)) = files
        .iter()
        .find(|(p, _)| p.exists() || p.symlink_metadata().is_ok())
    {
        return Err(Error::Usage(format!(
            "{} exists: tether init writes a new recipe and never overwrites a file (move it \
             away, or give another recipe path with -f)",
            path.display()
        )));
    }
    for (path, text) in &files {
        write_new(path, text)
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    match settings.format {
        Format::Json => crate::outln!(
            "{}",
            serde_json::json!({ "type": "init", "template": template.name(), "files": names })
        ),
        Format::Text => {
            for name in &names {
                crate::outln!("wrote {name}");
            }
            crate::outln!(
                "next: set repo_url in {} and the servers in the stage files; `tether -n \
                 production deploy` then prints every command a deploy would run",
                names[0]
            );
        }
    }
    Ok(())
}

/// Creates `path` (and its directory), refusing one that appeared since the check.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_is_the_directory_when_it_is_a_plain_name() {
        assert_eq!(application_name(Path::new("/src/shop")), "shop");
        assert_eq!(application_name(Path::new("/src/my shop")), "app");
        assert_eq!(application_name(Path::new("/src/.hidden")), "app");
        assert_eq!(application_name(Path::new("/")), "app");
    }

    #[test]
    fn every_placeholder_is_filled() {
        for t in [
            Template::Rails,
            Template::Node,
            Template::Php,
            Template::Static,
        ] {
            for (path, text) in files(Path::new("/src/shop/deploy.rhai"), t) {
                assert!(!text.contains("{{"), "{} of {}", path.display(), t.name());
            }
        }
    }
}
