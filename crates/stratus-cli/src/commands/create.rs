//! `stratus create --template T --path P`: a new service from a bundled template.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

/// `stratus create` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct CreateArgs {
    /// Template: aws-nodejs, aws-python3 or provided-rust.
    #[arg(long, short = 't')]
    template: String,
    /// Directory to create (default: the current directory).
    #[arg(long, short = 'p')]
    path: Option<PathBuf>,
    /// Service name (default: the directory's name).
    #[arg(long, short = 'n')]
    name: Option<String>,
}

const TEMPLATES: &[(&str, &[(&str, &str)])] = &[
    (
        "aws-nodejs",
        &[
            (
                "serverless.yml",
                include_str!("../../templates/aws-nodejs/serverless.yml"),
            ),
            (
                "handler.js",
                include_str!("../../templates/aws-nodejs/handler.js"),
            ),
            (".gitignore", "node_modules\n.serverless\n.stratus\n"),
        ],
    ),
    (
        "aws-python3",
        &[
            (
                "serverless.yml",
                include_str!("../../templates/aws-python3/serverless.yml"),
            ),
            (
                "handler.py",
                include_str!("../../templates/aws-python3/handler.py"),
            ),
            (".gitignore", "__pycache__\n.serverless\n.stratus\n"),
        ],
    ),
    (
        "provided-rust",
        &[
            (
                "serverless.yml",
                include_str!("../../templates/provided-rust/serverless.yml"),
            ),
            (
                "Cargo.toml",
                include_str!("../../templates/provided-rust/Cargo.toml"),
            ),
            (
                "src/main.rs",
                include_str!("../../templates/provided-rust/src/main.rs"),
            ),
            (".gitignore", "target\n.serverless\n.stratus\n"),
        ],
    ),
];

/// Writes the template's files into `dir` with the service name filled in.
pub(crate) fn write_template(
    template: &str,
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let Some((_, files)) = TEMPLATES.iter().find(|(t, _)| *t == template) else {
        let known: Vec<_> = TEMPLATES.iter().map(|(t, _)| *t).collect();
        bail!(
            "unknown template \"{template}\"; available templates: {}",
            known.join(", ")
        );
    };
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("service name \"{name}\" must start with a letter and contain only letters, digits, '-' and '_' (use --name)");
    }
    let mut written = Vec::new();
    for (rel, content) in files.iter() {
        let path = dir.join(rel);
        if path.exists() {
            bail!("{} already exists; not overwriting it", path.display());
        }
        written.push((path, content.replace("SERVICE_NAME", name)));
    }
    for (path, content) in &written {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(written.into_iter().map(|(p, _)| p).collect())
}

pub(crate) fn run(args: CreateArgs) -> anyhow::Result<()> {
    let dir = match &args.path {
        Some(p) => p.clone(),
        None => std::env::current_dir()?,
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => dir
            .canonicalize()
            .unwrap_or_else(|_| dir.clone())
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("service")
            .to_string(),
    };
    let files = write_template(&args.template, &dir, &name)?;
    println!(
        "✔ Project successfully created in \"{}\" from \"{}\" template",
        dir.display(),
        args.template
    );
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_write_and_refuse_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_template("aws-python3", dir.path(), "svc").unwrap();
        assert_eq!(files.len(), 3);
        let yml = std::fs::read_to_string(dir.path().join("serverless.yml")).unwrap();
        assert!(yml.starts_with("service: svc\n"));
        let err = write_template("aws-python3", dir.path(), "svc").unwrap_err();
        assert!(err.to_string().contains("already exists"));
        assert!(write_template("aws-cobol", dir.path(), "svc")
            .unwrap_err()
            .to_string()
            .contains("available templates: aws-nodejs"));
        assert!(write_template("aws-nodejs", dir.path(), "9bad")
            .unwrap_err()
            .to_string()
            .contains("must start with a letter"));
    }
}
