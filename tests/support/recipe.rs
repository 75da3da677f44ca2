//! Recipes in temporary directories, run with the `tether` binary; with the lab's ssh config
//! when their servers are lab hosts.

use std::path::PathBuf;

use super::lab::Lab;
use super::tether::Tether;

/// A directory with `deploy.rhai` holding `text`.
pub struct RecipeDir {
    pub dir: PathBuf,
    /// The lab's ssh config, passed with `-F` when the recipe's hosts are lab hosts.
    pub ssh_config: Option<PathBuf>,
}

impl RecipeDir {
    pub fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tether-recipe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("deploy.rhai"), text).unwrap();
        RecipeDir {
            dir,
            ssh_config: None,
        }
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

impl Drop for RecipeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
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
