//! `stratus create --template T --path P`: a new service from a bundled template, or
//! from a local directory (`--template-path`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

/// `stratus create` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct CreateArgs {
    /// Template: aws-nodejs, aws-python3 or provided-rust.
    #[arg(long, short = 't', required_unless_present_any = ["template_path", "template_url"])]
    template: Option<String>,
    /// Copy this local directory as the new service (its serverless.yml's `service:`
    /// is renamed with --name).
    #[arg(
        long = "template-path",
        conflicts_with = "template",
        value_name = "DIR"
    )]
    template_path: Option<PathBuf>,
    /// Not supported: Stratus downloads nothing; clone the repository and use
    /// --template-path.
    #[arg(long = "template-url", short = 'u', conflicts_with_all = ["template", "template_path"], value_name = "URL")]
    template_url: Option<String>,
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
    check_name(name)?;
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

/// Copies the directory `from` into `dir` (which must not hold any of its files), then
/// renames the service in its serverless.yml to `name` when given.
fn copy_template(from: &Path, dir: &Path, name: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    if !from.is_dir() {
        bail!("--template-path {}: not a directory", from.display());
    }
    let mut files = Vec::new();
    let mut stack = vec![from.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut written = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(from).unwrap_or(f);
        let dest = dir.join(rel);
        if dest.exists() {
            bail!("{} already exists; not overwriting it", dest.display());
        }
        written.push((f, dest));
    }
    for (src, dest) in &written {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(src, dest)
            .with_context(|| format!("cannot copy {} to {}", src.display(), dest.display()))?;
    }
    if let Some(name) = name {
        check_name(name)?;
        let yml = ["serverless.yml", "serverless.yaml"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file());
        if let Some(yml) = yml {
            let text = std::fs::read_to_string(&yml)?;
            let mut renamed = false;
            let lines: Vec<String> = text
                .lines()
                .map(|l| {
                    if !renamed && l.starts_with("service:") {
                        renamed = true;
                        format!("service: {name}")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            if renamed {
                std::fs::write(&yml, lines.join("\n") + "\n")
                    .with_context(|| format!("cannot write {}", yml.display()))?;
            }
        }
    }
    Ok(written.into_iter().map(|(_, d)| d).collect())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("service name \"{name}\" must start with a letter and contain only letters, digits, '-' and '_' (use --name)");
    }
    Ok(())
}

pub(crate) fn run(args: CreateArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.template_url {
        bail!("--template-url {url}: Stratus does not download templates; clone the repository and use --template-path DIR");
    }
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
    let (files, template) = match (&args.template, &args.template_path) {
        (_, Some(from)) => (
            copy_template(from, &dir, args.name.as_deref())?,
            from.display().to_string(),
        ),
        (Some(t), None) => (write_template(t, &dir, &name)?, t.clone()),
        (None, None) => bail!("which template? give --template or --template-path"),
    };
    println!(
        "✔ Project successfully created in \"{}\" from \"{template}\" template",
        dir.display()
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

    #[test]
    fn a_local_template_is_copied_and_renamed() {
        let from = tempfile::tempdir().unwrap();
        std::fs::write(
            from.path().join("serverless.yml"),
            "service: old\nprovider:\n  name: aws\n",
        )
        .unwrap();
        std::fs::create_dir(from.path().join("src")).unwrap();
        std::fs::write(from.path().join("src/h.js"), "x").unwrap();
        let to = tempfile::tempdir().unwrap();
        let files = copy_template(from.path(), to.path(), Some("fresh")).unwrap();
        assert_eq!(files.len(), 2);
        let yml = std::fs::read_to_string(to.path().join("serverless.yml")).unwrap();
        assert_eq!(yml, "service: fresh\nprovider:\n  name: aws\n");
        assert_eq!(
            std::fs::read_to_string(to.path().join("src/h.js")).unwrap(),
            "x"
        );
        assert!(copy_template(from.path(), to.path(), None)
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        assert!(copy_template(&to.path().join("nope"), to.path(), None)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
