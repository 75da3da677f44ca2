//! Recipes in temporary directories, run with the `tether` binary; with the lab's ssh config
//! when their servers are lab hosts.

use std::path::PathBuf;

use super::lab::Lab;
use super::tether::Tether;

/// A temporary directory (removed when dropped) with `deploy.rhai` holding `text`.
pub struct RecipeDir {
    pub dir: PathBuf,
    /// The lab's ssh config, passed with `-F` when the recipe's hosts are lab hosts.
    pub ssh_config: Option<PathBuf>,
    _temp: tempfile::TempDir,
}

impl RecipeDir {
    pub fn new(name: &str, text: &str) -> Self {
        let temp = tempfile::Builder::new()
            .prefix(&format!("tether-recipe-{name}-"))
            .tempdir()
            .unwrap();
        let dir = temp.path().to_path_buf();
        std::fs::write(dir.join("deploy.rhai"), text).unwrap();
        RecipeDir {
            dir,
            ssh_config: None,
            _temp: temp,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Saves in place (truncate and write, as `>` does).
    pub fn save_in_place(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Saves as most editors do: a temporary file renamed over the original.
    pub fn save_by_rename(&self, name: &str, text: &str) {
        let path = self.path(name);
        let base = path.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = path.with_file_name(format!(".{base}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    pub fn write(&self, name: &str, text: &str) -> &Self {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn tether(&self) -> Tether {
        let tether = Tether::new().current_dir(&self.dir);
        match &self.ssh_config {
            Some(cfg) => tether.ssh_config(cfg),
            None => tether,
        }
    }
}

/// A recipe whose servers web1, web2 (web, app) and db1 (db) are `lab`'s hosts.
pub fn lab_recipe(lab: &Lab, name: &str, body: &str) -> RecipeDir {
    let mut r = RecipeDir::new(
        name,
        &format!(
            "server(\"web1\", #{{ roles: [\"web\", \"app\"], flavour: \"blue\" }});\nserver(\"web2\", #{{ roles: [\"web\", \"app\"] }});\nserver(\"db1\", #{{ roles: [\"db\"], primary: true }});\n{body}"
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    r
}

pub fn lab(names: &[&str]) -> Lab {
    Lab::builder().names(names).start()
}
