//! Gemfile services: a Ruby function's gems, installed as Lambda users vendor them
//! (`bundle install --deployment`, which lays them out under
//! `vendor/bundle/ruby/<version>/`), go into the package; the Ruby bootstrap puts
//! that directory first on `GEM_PATH`.
//!
//! Design:
//! - Bundler runs on the project's own `Gemfile` and `Gemfile.lock` (deployment
//!   mode needs the lock, and installs exactly it), but installs into a staging
//!   directory under `.stratus/cache/ruby/<sha256 of Gemfile and lock>/`: the
//!   project itself is not touched (no `.bundle/config`, no `vendor/bundle`). The
//!   settings are given as `BUNDLE_*` variables: `BUNDLE_DEPLOYMENT`,
//!   `BUNDLE_PATH`, and `BUNDLE_WITHOUT=development:test` (as npm's dev
//!   dependencies are left out).
//! - A project with `vendor/cache` (from `bundle cache`) is installed with
//!   `--local`: from those `.gem` files, no network. Otherwise Bundler fetches
//!   from the Gemfile's sources (rubygems.org must then be reachable).
//! - A finished staging directory is reused while the Gemfile and lock stay the
//!   same, so deploying unchanged code runs no Bundler and packages the same bytes.
//! - Bundler's own download cache (`ruby/<version>/cache/*.gem`) is left out of
//!   the package: the installed gems are what runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use stratus_package::SelectedFile;

/// Marks a staging directory whose install finished.
const DONE: &str = ".stratus-complete";

/// Installs the gems of the `Gemfile` in `project` (under `cache_root`, once per
/// Gemfile and lock) and returns them as package files under `vendor/bundle/`.
pub(crate) fn install(project: &Path, cache_root: &Path) -> anyhow::Result<Vec<SelectedFile>> {
    let gemfile = project.join("Gemfile");
    let lock = project.join("Gemfile.lock");
    let gemfile_text =
        std::fs::read(&gemfile).with_context(|| format!("cannot read {}", gemfile.display()))?;
    let Ok(lock_text) = std::fs::read(&lock) else {
        bail!(
            "{} has a Gemfile but no Gemfile.lock: run `bundle lock` (or `bundle install`) there first; \
             a function's gems are installed in deployment mode, which installs exactly what the lock names",
            project.display()
        );
    };
    let mut key = gemfile_text;
    key.extend_from_slice(b"\0");
    key.extend_from_slice(&lock_text);
    let stage = cache_root.join(&stratus_package::sha256_hex(&key)[..16]);
    let bundle_dir = stage.join("vendor").join("bundle");
    if !stage.join(DONE).is_file() {
        if stage.exists() {
            std::fs::remove_dir_all(&stage)
                .with_context(|| format!("cannot clear {}", stage.display()))?;
        }
        std::fs::create_dir_all(&stage)
            .with_context(|| format!("cannot create {}", stage.display()))?;
        run_bundler(project, &gemfile, &bundle_dir)?;
        std::fs::write(stage.join(DONE), b"")
            .with_context(|| format!("cannot write {}", stage.display()))?;
    }
    let mut files = Vec::new();
    collect(&bundle_dir, &bundle_dir, &mut files)?;
    files.sort_by(|a, b| a.zip_path.cmp(&b.zip_path));
    Ok(files)
}

fn run_bundler(project: &Path, gemfile: &Path, bundle_dir: &Path) -> anyhow::Result<()> {
    let bundle = std::env::var("STRATUS_BUNDLE").unwrap_or_else(|_| "bundle".into());
    let mut cmd = Command::new(&bundle);
    cmd.arg("install")
        .current_dir(project)
        .env("BUNDLE_GEMFILE", absolute(gemfile))
        .env("BUNDLE_PATH", absolute(bundle_dir))
        .env("BUNDLE_DEPLOYMENT", "true")
        .env("BUNDLE_WITHOUT", "development:test")
        .env("BUNDLE_DISABLE_SHARED_GEMS", "true");
    let local = project.join("vendor").join("cache").is_dir();
    if local {
        cmd.arg("--local");
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} has a Gemfile, but `{bundle}` (Ruby's Bundler) was not found on PATH: install it \
             (Debian: `apt-get install ruby-bundler`; elsewhere `gem install bundler`) to package the \
             function's gems",
            project.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot run {bundle}")),
    };
    if !out.status.success() {
        bail!(
            "`bundle install` (deployment mode{}) failed in {}: {}{}{}",
            if local {
                ", --local from vendor/cache"
            } else {
                ""
            },
            project.display(),
            String::from_utf8_lossy(&out.stdout).trim(),
            if out.stdout.is_empty() { "" } else { "\n" },
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Files under `dir` as `vendor/bundle/<path relative to root>`, leaving out
/// Bundler's `.gem` download cache.
fn collect(root: &Path, dir: &Path, out: &mut Vec<SelectedFile>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // `ruby/3.1.0/cache`: the downloaded `.gem` archives.
        if parts.len() == 3 && parts[0] == "ruby" && parts[2] == "cache" {
            continue;
        }
        let meta =
            std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            collect(root, &path, out)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            out.push(SelectedFile {
                zip_path: format!("vendor/bundle/{}", parts.join("/")),
                source: path.clone(),
                executable: meta.permissions().mode() & 0o100 != 0,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_package_holds_installed_gems_not_bundlers_download_cache() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("ruby/3.1.0/gems/g-1.0/lib/g.rb", "module G; end\n"),
            ("ruby/3.1.0/specifications/g-1.0.gemspec", "spec\n"),
            ("ruby/3.1.0/cache/g-1.0.gem", "archive"),
            ("ruby/3.1.0/bin/g", "#!/bin/sh\n"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("ruby/3.1.0/bin/g"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let mut files = Vec::new();
        collect(root, root, &mut files).unwrap();
        files.sort_by(|a, b| a.zip_path.cmp(&b.zip_path));
        let names: Vec<(&str, bool)> = files
            .iter()
            .map(|f| (f.zip_path.as_str(), f.executable))
            .collect();
        assert_eq!(
            names,
            [
                ("vendor/bundle/ruby/3.1.0/bin/g", true),
                ("vendor/bundle/ruby/3.1.0/gems/g-1.0/lib/g.rb", false),
                (
                    "vendor/bundle/ruby/3.1.0/specifications/g-1.0.gemspec",
                    false
                ),
            ]
        );
    }

    #[test]
    fn a_gemfile_without_its_lock_is_refused_before_bundler_runs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Gemfile"), "gem 'x'\n").unwrap();
        let e = install(dir.path(), &dir.path().join("cache"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has a Gemfile but no Gemfile.lock"), "{e}");
        assert!(!dir.path().join("cache").exists());
    }
}
