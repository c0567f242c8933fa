//! `wasmig new` and `wasmig add`: a plugin crate, and the next step of one, from templates
//! (rendered with minijinja; they live in `cli/templates/`).

use anyhow::{Context, Result, bail};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use semver::Version;
use serde::Serialize;
use std::path::{Path, PathBuf};
use wasmig::manifest::{namespace, validate_name};

/// The files of a new plugin crate, by path.
const NEW: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/new/Cargo.toml")),
    (
        ".cargo/config.toml",
        include_str!("../templates/new/config.toml"),
    ),
    ("build.rs", include_str!("../templates/new/build.rs")),
    ("src/lib.rs", include_str!("../templates/new/lib.rs")),
    ("README.md", include_str!("../templates/new/README.md")),
    (".gitignore", include_str!("../templates/new/gitignore")),
];

/// A template of `wasmig add`: its files, by the suffix after `<version>-<slug>`.
struct Template {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const TEMPLATES: &[Template] = &[
    Template {
        name: "create-table",
        files: &[
            (
                ".up.sql",
                include_str!("../templates/add/create-table.up.sql"),
            ),
            (
                ".down.sql",
                include_str!("../templates/add/create-table.down.sql"),
            ),
        ],
    },
    Template {
        name: "add-column",
        files: &[
            (
                ".up.sql",
                include_str!("../templates/add/add-column.up.sql"),
            ),
            (
                ".down.sql",
                include_str!("../templates/add/add-column.down.sql"),
            ),
        ],
    },
    Template {
        name: "add-index",
        files: &[
            (".up.sql", include_str!("../templates/add/add-index.up.sql")),
            (
                ".down.sql",
                include_str!("../templates/add/add-index.down.sql"),
            ),
        ],
    },
    Template {
        name: "rename-column",
        files: &[
            (
                ".up.sql",
                include_str!("../templates/add/rename-column.up.sql"),
            ),
            (
                ".down.sql",
                include_str!("../templates/add/rename-column.down.sql"),
            ),
        ],
    },
    Template {
        name: "rename-table",
        files: &[
            (
                ".up.sql",
                include_str!("../templates/add/rename-table.up.sql"),
            ),
            (
                ".down.sql",
                include_str!("../templates/add/rename-table.down.sql"),
            ),
        ],
    },
    Template {
        name: "backfill",
        files: &[(".rs", include_str!("../templates/add/backfill.rs"))],
    },
];

/// The templates `wasmig add --template` takes (`rename` picks the column or the table form).
pub(crate) const TEMPLATE_NAMES: &[&str] = &[
    "create-table",
    "add-column",
    "add-index",
    "rename",
    "backfill",
];

/// What a template's names are: `--table`, `--column`, `--to`, `--type`, `--key`.
#[derive(Default, Clone)]
pub(crate) struct Names {
    pub(crate) table: Option<String>,
    pub(crate) column: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) column_type: Option<String>,
    pub(crate) key: Option<String>,
}

/// What `new` and `add` wrote, for the report and `--json`.
#[derive(Serialize)]
pub(crate) struct Written {
    pub(crate) plugin: String,
    pub(crate) namespace: String,
    pub(crate) path: PathBuf,
    /// The step's version (`add`), or the first step's (`new`).
    pub(crate) version: String,
    pub(crate) files: Vec<PathBuf>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A variable a template names and the command did not provide is a bug, not "".
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

fn render(template: &str, ctx: &Value) -> Result<String> {
    Ok(environment().render_str(template, ctx)?)
}

/// A plugin crate for `name` in `dir` (default: `./<name>`), with its first step. `sdk`: the
/// path of a local `wasmig-guest` to build against instead of the published one.
pub(crate) fn new(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<Written> {
    validate_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: wasmig new makes a new crate",
            dir.display()
        );
    }
    let sdk = match sdk {
        Some(path) => {
            let path = std::fs::canonicalize(path)
                .with_context(|| format!("--sdk {}: no such directory", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!("--sdk {}: no Cargo.toml there", path.display());
            }
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("{:?}", env!("CARGO_PKG_VERSION")),
    };
    let ns = namespace(name);
    let ctx = context! {
        name,
        crate_name => name,
        file_stem => name.replace('-', "_"),
        namespace => ns,
        sdk,
    };
    let mut files = Vec::new();
    for (path, template) in NEW {
        files.push(write_new(&dir.join(path), &render(template, &ctx)?)?);
    }
    std::fs::create_dir_all(dir.join("migrations"))?;
    let table = format!("{ns}item");
    let version = Version::new(0, 1, 0);
    files.extend(write_step(
        &dir.join("migrations"),
        &version,
        "create-items",
        template_named("create-table"),
        &context! { table, description => "create items" },
    )?);
    Ok(Written {
        plugin: name.to_string(),
        namespace: ns,
        path: dir,
        version: version.to_string(),
        files,
    })
}

fn template_named(name: &str) -> &'static Template {
    TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .expect("a template of ours")
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, contents: &str) -> Result<PathBuf> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// Writes a step's files into `migrations`.
fn write_step(
    migrations: &Path,
    version: &Version,
    slug: &str,
    template: &Template,
    ctx: &Value,
) -> Result<Vec<PathBuf>> {
    // Rendered first, written after: a template that fails leaves no half of a step.
    let rendered: Vec<(PathBuf, String)> = template
        .files
        .iter()
        .map(|(suffix, text)| {
            Ok((
                migrations.join(format!("{version}-{slug}{suffix}")),
                render(text, ctx)?,
            ))
        })
        .collect::<Result<_>>()?;
    rendered
        .iter()
        .map(|(path, text)| write_new(path, text))
        .collect()
}

/// `"Add tags!"` → `"add-tags"`.
pub(crate) fn slug(description: &str) -> String {
    let lower = description.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.join("-")
}

/// A name for SQL the template writes: letters, digits and underscores, starting with a
/// letter or underscore.
fn identifier(what: &str, name: &str) -> Result<String> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        bail!(
            "{what} {name:?}: a name of letters, digits and underscores, not starting with a digit"
        );
    }
    Ok(name.to_string())
}

/// The plugin's name for a table given as `item` or `notes__item`.
fn table_name(ns: &str, table: &str) -> Result<String> {
    let table = identifier("--table", table)?;
    Ok(if table.starts_with(ns) {
        table
    } else {
        format!("{ns}{table}")
    })
}

/// The versions of the steps in `migrations`.
fn versions(migrations: &Path) -> Result<Vec<Version>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(migrations)
        .with_context(|| format!("cannot read {}", migrations.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some((v, _)) = name.split_once('-')
            && let Ok(v) = Version::parse(v)
        {
            found.push(v);
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The version after `last`: its minor version raised.
fn next_version(last: Option<&Version>) -> Version {
    match last {
        None => Version::new(0, 1, 0),
        Some(v) => Version::new(v.major, v.minor + 1, 0),
    }
}

/// Adds the next step to the plugin crate in `dir`, from `template`.
pub(crate) fn add(
    dir: &Path,
    description: &str,
    template_name: &str,
    names: &Names,
    version: Option<Version>,
) -> Result<Written> {
    let manifest_path = dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "{} not found: run wasmig add in a plugin crate (wasmig new makes one)",
            manifest_path.display()
        )
    })?;
    let mut doc: toml_edit::DocumentMut = manifest
        .parse()
        .with_context(|| format!("{} is not valid TOML", manifest_path.display()))?;
    let plugin = doc["package"]["name"]
        .as_str()
        .with_context(|| format!("{} names no package", manifest_path.display()))?
        .to_string();
    validate_name(&plugin).map_err(|e| anyhow::anyhow!("the crate's name: {e}"))?;
    let ns = namespace(&plugin);
    let migrations = dir.join("migrations");
    if !migrations.is_dir() {
        bail!(
            "{} is not a directory: wasmig add writes the plugin's steps there",
            migrations.display()
        );
    }
    let existing = versions(&migrations)?;
    let version = match version {
        Some(v) => {
            if existing.contains(&v) {
                bail!("version {v} is already a step in {}", migrations.display());
            }
            v
        }
        None => next_version(existing.last()),
    };
    if let Some(last) = existing.last()
        && version < *last
    {
        bail!("version {version} is older than the newest step, {last}: steps are added in order");
    }
    let slug = slug(description);
    if slug.is_empty() {
        bail!("the description {description:?} has no letters or digits to name the step with");
    }
    let need = |what: &str, v: &Option<String>| {
        v.clone()
            .with_context(|| format!("the {template_name} template needs --{what}"))
    };
    let (template, ctx) = match template_name {
        "create-table" => {
            let table = match &names.table {
                Some(t) => table_name(&ns, t)?,
                None => {
                    let base = slug
                        .strip_prefix("create-")
                        .unwrap_or(&slug)
                        .replace('-', "_");
                    table_name(&ns, &base)?
                }
            };
            ("create-table", context! { table, description })
        }
        "add-column" => {
            let column_type = names.column_type.clone().unwrap_or_else(|| "TEXT".into());
            if !column_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _(),'".contains(&b))
            {
                bail!(
                    "--type {column_type:?}: a column type such as TEXT, INTEGER or NUMERIC(10, 2)"
                );
            }
            (
                "add-column",
                context! {
                    table => table_name(&ns, &need("table", &names.table)?)?,
                    column => identifier("--column", &need("column", &names.column)?)?,
                    column_type,
                },
            )
        }
        "add-index" => {
            let table = table_name(&ns, &need("table", &names.table)?)?;
            let column = identifier("--column", &need("column", &names.column)?)?;
            let index = format!("{table}_{column}_idx");
            ("add-index", context! { table, column, index })
        }
        "rename" => {
            let table = table_name(&ns, &need("table", &names.table)?)?;
            let to = need("to", &names.to)?;
            match &names.column {
                Some(column) => (
                    "rename-column",
                    context! {
                        table,
                        column => identifier("--column", column)?,
                        to => identifier("--to", &to)?,
                    },
                ),
                None => (
                    "rename-table",
                    context! { table, to => table_name(&ns, &to)? },
                ),
            }
        }
        "backfill" => (
            "backfill",
            context! {
                description,
                table => table_name(&ns, &need("table", &names.table)?)?,
                column => identifier("--column", &need("column", &names.column)?)?,
                key => identifier("--key", names.key.as_deref().unwrap_or("id"))?,
            },
        ),
        other => bail!(
            "no template {other:?}; the templates are {}",
            TEMPLATE_NAMES.join(", ")
        ),
    };
    let files = write_step(&migrations, &version, &slug, template_named(template), &ctx)?;
    // The plugin's version follows its newest step (`plugin!` takes the crate's version).
    let current = doc["package"]["version"].as_str().map(Version::parse);
    match current {
        Some(Ok(current)) if current >= version => {}
        Some(Ok(_)) => {
            doc["package"]["version"] = toml_edit::value(version.to_string());
            std::fs::write(&manifest_path, doc.to_string())
                .with_context(|| format!("cannot write {}", manifest_path.display()))?;
        }
        _ => eprintln!(
            "note: set the plugin's version to {version} or later yourself ({} gives it no \
             plain version)",
            manifest_path.display()
        ),
    }
    Ok(Written {
        plugin,
        namespace: ns,
        path: dir.to_path_buf(),
        version: version.to_string(),
        files,
    })
}
