//! `wasmig_guest::plugin!`: a plugin declared from its crate and its migrations folder.
//!
//! The macro reads the folder when the plugin compiles: each `<version>-<slug>.up.sql` is a
//! step (its description is the slug, hyphens as spaces) and `<version>-<slug>.down.sql` its
//! down step. The SQL is embedded with `include_str!`, so the plugin rebuilds when a file
//! changes, and travels in the component as data: the host runs it without compiling the
//! plugin. Every mistake in the folder is a compile error naming the file.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use semver::Version;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token, bracketed, parenthesized};

/// See the SDK's documentation of `plugin!`.
#[proc_macro]
pub fn plugin(input: TokenStream) -> TokenStream {
    let declaration = syn::parse_macro_input!(input as Declaration);
    match expand(declaration) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What the macro's input says.
#[derive(Default)]
struct Declaration {
    name: Option<LitStr>,
    version: Option<LitStr>,
    description: Option<LitStr>,
    depends_on: Vec<(LitStr, LitStr)>,
    reads: Vec<LitStr>,
    migrations: Option<LitStr>,
    code: Vec<CodeStep>,
}

/// `code("0.3.0", "add slugs", up = backfill, down = unfill, revision = "2")`.
struct CodeStep {
    version: LitStr,
    description: LitStr,
    up: syn::Path,
    down: Option<syn::Path>,
    revision: Option<LitStr>,
}

impl Parse for Declaration {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut d = Declaration::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            let duplicate = || syn::Error::new(key.span(), format!("`{key}` is given twice"));
            match key.to_string().as_str() {
                "name" | "version" | "description" | "migrations" => {
                    let value: LitStr = input.parse()?;
                    let slot = match key.to_string().as_str() {
                        "name" => &mut d.name,
                        "version" => &mut d.version,
                        "description" => &mut d.description,
                        _ => &mut d.migrations,
                    };
                    if slot.replace(value).is_some() {
                        return Err(duplicate());
                    }
                }
                "depends_on" => {
                    let content;
                    bracketed!(content in input);
                    let pairs = Punctuated::<Dependency, Token![,]>::parse_terminated(&content)?;
                    d.depends_on = pairs.into_iter().map(|p| (p.name, p.requirement)).collect();
                }
                "reads" => {
                    let content;
                    bracketed!(content in input);
                    d.reads = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
                        .into_iter()
                        .collect();
                }
                "code" => {
                    let content;
                    bracketed!(content in input);
                    d.code = Punctuated::<CodeStep, Token![,]>::parse_terminated(&content)?
                        .into_iter()
                        .collect();
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown key `{other}`: plugin! takes name, version, description, \
                             depends_on, reads, migrations and code"
                        ),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(d)
    }
}

/// `"accounts" = "^0.2"`.
struct Dependency {
    name: LitStr,
    requirement: LitStr,
}

impl Parse for Dependency {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.parse()?;
        input.parse::<Token![=]>()?;
        let requirement = input.parse()?;
        Ok(Dependency { name, requirement })
    }
}

impl Parse for CodeStep {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let word: Ident = input.parse()?;
        if word != "code" {
            return Err(syn::Error::new(
                word.span(),
                "a code step is written code(\"<version>\", \"<description>\", up = <fn>)",
            ));
        }
        let content;
        parenthesized!(content in input);
        let version = content.parse()?;
        content.parse::<Token![,]>()?;
        let description = content.parse()?;
        let (mut up, mut down, mut revision) = (None, None, None);
        while !content.is_empty() {
            content.parse::<Token![,]>()?;
            if content.is_empty() {
                break;
            }
            let key: Ident = content.parse()?;
            content.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "up" => up = Some(content.parse()?),
                "down" => down = Some(content.parse()?),
                "revision" => revision = Some(content.parse()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown key `{other}` in a code step: up, down, revision"),
                    ));
                }
            }
        }
        let up = up.ok_or_else(|| {
            syn::Error::new(
                word.span(),
                "a code step needs `up = <fn(&Tx) -> Result<()>>`",
            )
        })?;
        Ok(CodeStep {
            version,
            description,
            up,
            down,
            revision,
        })
    }
}

/// One step of the folder: its up file and, if there is one, its down file; or its code.
struct FolderStep {
    slug: String,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
    code: Option<PathBuf>,
}

/// What a file of the folder is.
enum Kind {
    Up,
    Down,
    Code,
}

/// Reads the migrations folder: steps by version. Every entry must be a step's file.
fn read_folder(dir: &Path, span: Span) -> syn::Result<BTreeMap<Version, FolderStep>> {
    let error = |msg: String| syn::Error::new(span, msg);
    let entries = std::fs::read_dir(dir).map_err(|e| {
        error(format!(
            "cannot read the migrations folder {}: {e}",
            dir.display()
        ))
    })?;
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| error(format!("cannot read {}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        names.push(name);
    }
    names.sort();
    let mut steps: BTreeMap<Version, FolderStep> = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        let (stem, kind) = if let Some(stem) = name.strip_suffix(".up.sql") {
            (stem, Kind::Up)
        } else if let Some(stem) = name.strip_suffix(".down.sql") {
            (stem, Kind::Down)
        } else if let Some(stem) = name.strip_suffix(".rs") {
            (stem, Kind::Code)
        } else {
            return Err(error(format!(
                "{}: a migrations folder holds only <version>-<slug>.up.sql, \
                 <version>-<slug>.down.sql and <version>-<slug>.rs files",
                path.display()
            )));
        };
        let (version, slug) = stem.split_once('-').ok_or_else(|| {
            error(format!(
                "{}: the name must be <version>-<slug>, for example 0.2.0-add-tags.up.sql",
                path.display()
            ))
        })?;
        let version = Version::parse(version).map_err(|e| {
            error(format!(
                "{}: {version:?} is not a semantic version (major.minor.patch): {e}",
                path.display()
            ))
        })?;
        let slug_ok = !slug.is_empty()
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !slug_ok {
            return Err(error(format!(
                "{}: the slug {slug:?} must be lowercase letters, digits, hyphens and \
                 underscores",
                path.display()
            )));
        }
        let step = steps.entry(version.clone()).or_insert_with(|| FolderStep {
            slug: slug.to_string(),
            up: None,
            down: None,
            code: None,
        });
        if step.slug != slug {
            return Err(error(format!(
                "{}: version {version} is already the step {:?}; each version is one step",
                path.display(),
                step.slug
            )));
        }
        let slot = match kind {
            Kind::Up => &mut step.up,
            Kind::Down => &mut step.down,
            Kind::Code => &mut step.code,
        };
        *slot = Some(path.clone());
        if step.code.is_some() && (step.up.is_some() || step.down.is_some()) {
            return Err(error(format!(
                "{}: version {version} is both a SQL step and a code step; a code step's \
                 down step is its `fn down`",
                path.display()
            )));
        }
    }
    for (version, step) in &steps {
        if step.up.is_none() && step.code.is_none() {
            let down = step.down.as_ref().expect("a step has a file");
            return Err(error(format!(
                "{}: a down step without its up step ({version}-{}.up.sql)",
                down.display(),
                step.slug
            )));
        }
    }
    Ok(steps)
}

fn expand(d: Declaration) -> syn::Result<proc_macro2::TokenStream> {
    let span = Span::call_site();
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    let name = d
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&env("CARGO_PKG_NAME"), span));
    wasmig_format::manifest::validate_name(&name.value())
        .map_err(|e| syn::Error::new(name.span(), e.to_string()))?;
    let version = d
        .version
        .clone()
        .unwrap_or_else(|| LitStr::new(&env("CARGO_PKG_VERSION"), span));
    let plugin_version = Version::parse(&version.value()).map_err(|e| {
        syn::Error::new(
            version.span(),
            format!(
                "the plugin's version {:?} is not a semantic version: {e}",
                version.value()
            ),
        )
    })?;
    let description = d
        .description
        .clone()
        .unwrap_or_else(|| LitStr::new(&env("CARGO_PKG_DESCRIPTION"), span));

    // Steps by version: the folder's SQL steps and the code steps, one per version.
    let mut steps: BTreeMap<Version, proc_macro2::TokenStream> = BTreeMap::new();
    let mut modules = Vec::new();
    let mut checksums = Vec::new();
    let mut where_from: BTreeMap<Version, String> = BTreeMap::new();
    if let Some(folder) = &d.migrations {
        let dir = Path::new(&env("CARGO_MANIFEST_DIR")).join(folder.value());
        for (v, step) in read_folder(&dir, folder.span())? {
            if let Some(code) = &step.code {
                let (module, tokens, revision, has_down) =
                    code_file(&v, &step.slug, code, folder.span())?;
                modules.push(module);
                use wasmig_format::checksum::{Body, step as checksum};
                checksums.push((
                    v.to_string(),
                    checksum(
                        Body::Code(&revision),
                        has_down.then_some(Body::Code(&revision)),
                    ),
                ));
                where_from.insert(v.clone(), code.display().to_string());
                steps.insert(v, tokens);
                continue;
            }
            let up_path = step.up.expect("checked");
            let up_sql = std::fs::read_to_string(&up_path).map_err(|e| {
                syn::Error::new(folder.span(), format!("{}: {e}", up_path.display()))
            })?;
            let down_sql = match &step.down {
                Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                    syn::Error::new(folder.span(), format!("{}: {e}", p.display()))
                })?),
                None => None,
            };
            use wasmig_format::checksum::{Body, step as checksum};
            checksums.push((
                v.to_string(),
                checksum(Body::Sql(&up_sql), down_sql.as_deref().map(Body::Sql)),
            ));
            let version_lit = v.to_string();
            let description = step.slug.replace(['-', '_'], " ");
            let up_file = up_path.display().to_string();
            let mut tokens = quote! {
                ::wasmig_guest::StaticMigration::sql(#version_lit, #description, include_str!(#up_file))
            };
            if let Some(down) = &step.down {
                let down_file = down.display().to_string();
                tokens = quote! { #tokens.down_sql(include_str!(#down_file)) };
            }
            where_from.insert(v.clone(), up_path.display().to_string());
            steps.insert(v, tokens);
        }
    }
    for step in &d.code {
        let v = Version::parse(&step.version.value()).map_err(|e| {
            syn::Error::new(
                step.version.span(),
                format!("{:?} is not a semantic version: {e}", step.version.value()),
            )
        })?;
        if let Some(file) = where_from.get(&v) {
            return Err(syn::Error::new(
                step.version.span(),
                format!("version {v} is already the step {file}; each version is one step"),
            ));
        }
        let (version_lit, description, up) = (v.to_string(), &step.description, &step.up);
        let revision = step
            .revision
            .clone()
            .unwrap_or_else(|| LitStr::new("1", span));
        use wasmig_format::checksum::{Body, step as checksum};
        let revision_text = revision.value();
        checksums.push((
            v.to_string(),
            checksum(
                Body::Code(&revision_text),
                step.down.as_ref().map(|_| Body::Code(&revision_text)),
            ),
        ));
        let mut tokens = quote! {
            ::wasmig_guest::StaticMigration::code(#version_lit, #description, #revision, #up)
        };
        if let Some(down) = &step.down {
            tokens = quote! { #tokens.down_code(#revision, #down) };
        }
        where_from.insert(v.clone(), format!("code step {v}"));
        steps.insert(v, tokens);
    }
    if let Some((last, from)) = where_from.iter().next_back()
        && *last > plugin_version
    {
        return Err(syn::Error::new(
            version.span(),
            format!(
                "{from}: version {last} is newer than the plugin's version {plugin_version} \
                 (the crate's version, unless `version:` says otherwise); raise the plugin's \
                 version with its newest step"
            ),
        ));
    }
    let steps = steps.values();
    let depends_on = d.depends_on.iter().map(|(n, r)| quote! { (#n, #r) });
    let reads = &d.reads;
    checksums.sort_by(|a, b| {
        Version::parse(&a.0)
            .expect("parsed")
            .cmp(&Version::parse(&b.0).expect("parsed"))
    });
    let checksums = checksums.iter().map(|(v, c)| quote! { (#v, #c) });
    Ok(quote! {
        #(#modules)*

        /// This plugin, as `wasmig_guest::plugin!` declared it.
        pub const PLUGIN: ::wasmig_guest::StaticPlugin =
            ::wasmig_guest::StaticPlugin::new(#name, #version)
                .description(#description)
                .depends_on(&[#(#depends_on),*])
                .reads(&[#(#reads),*])
                .migrations(&[#(#steps),*]);

        /// Each step's version and checksum, computed when the plugin compiled.
        pub const CHECKSUMS: &[(&str, &str)] = &[#(#checksums),*];

        ::wasmig_guest::export_static_plugin!(PLUGIN);
    })
}

/// A code step's file: a module with `pub fn up(tx: &Tx) -> Result<()>`, optionally
/// `pub fn down` and `pub const REVISION: &str` (default "1"). Returns the module (the file,
/// included by path), the step's migration, its revision, and whether it has a down step.
fn code_file(
    version: &Version,
    slug: &str,
    path: &Path,
    span: Span,
) -> syn::Result<(
    proc_macro2::TokenStream,
    proc_macro2::TokenStream,
    String,
    bool,
)> {
    let error = |msg: String| syn::Error::new(span, format!("{}: {msg}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let file = syn::parse_file(&text).map_err(|e| error(format!("not Rust: {e}")))?;
    let mut has = (false, false);
    let mut revision = None;
    let mut revision_const = false;
    for item in &file.items {
        match item {
            syn::Item::Fn(f) if f.sig.ident == "up" => has.0 = true,
            syn::Item::Fn(f) if f.sig.ident == "down" => has.1 = true,
            syn::Item::Const(c) if c.ident == "REVISION" => match &*c.expr {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => {
                    revision = Some(s.value());
                    revision_const = true;
                }
                _ => return Err(error("REVISION must be a string literal".into())),
            },
            _ => {}
        }
    }
    if !has.0 {
        return Err(error(
            "a code step's file defines `pub fn up(tx: &wasmig_guest::Tx) -> wasmig_guest::Result<()>`"
                .into(),
        ));
    }
    let revision = revision.unwrap_or_else(|| "1".to_string());
    let module = Ident::new(
        &format!(
            "__wasmig_step_{}",
            version.to_string().replace(['.', '-', '+'], "_")
        ),
        Span::call_site(),
    );
    let file = path.display().to_string();
    let version_lit = version.to_string();
    let description = slug.replace(['-', '_'], " ");
    // The module's own constant when it has one (the same text: the checksum was computed
    // from it), so that it is used.
    let revision_expr = if revision_const {
        quote! { #module::REVISION }
    } else {
        quote! { #revision }
    };
    let mut migration = quote! {
        ::wasmig_guest::StaticMigration::code(#version_lit, #description, #revision_expr, #module::up)
    };
    if has.1 {
        migration = quote! { #migration.down_code(#revision_expr, #module::down) };
    }
    Ok((
        quote! {
            #[path = #file]
            mod #module;
        },
        migration,
        revision,
        has.1,
    ))
}
