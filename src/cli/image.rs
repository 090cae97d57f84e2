//! `rcompose image ls|inspect|rm|prune|pull|import|load|save|tag|history` and `rcompose images`.

use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;

use super::{progress_mode, Global};
use crate::image::auth::AuthStore;
use crate::image::progress::{human_bytes, Progress};
use crate::image::pull::Puller;
use crate::image::reference::Reference;
use crate::image::registries::Registries;
use crate::image::store::{ImageRecord, Store};

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile (like `docker build`)
    Build(Box<super::build::ImageBuildArgs>),
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on images
    Inspect {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Remove images
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
        /// Remove the image even when other references point at it
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused images, layers and blobs
    Prune {
        /// Remove all images, not only those without a reference
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation (rcompose never prompts)
        #[arg(short, long)]
        force: bool,
    },
    /// Create an image from a root-filesystem tarball (like `docker import`)
    Import {
        /// The tarball (plain, gzip or zstd); `-` for standard input
        #[arg(value_name = "FILE")]
        file: String,
        /// Name the image
        #[arg(value_name = "REFERENCE")]
        reference: Option<String>,
        /// Dockerfile instructions to apply: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL,
        /// VOLUME, STOPSIGNAL
        #[arg(short, long = "change", value_name = "INSTRUCTION")]
        changes: Vec<String>,
        /// Platform to record (default: the host's)
        #[arg(long)]
        platform: Option<String>,
    },
    /// Load images from a `docker save` or OCI archive (like `docker load`)
    Load {
        /// Read from this file instead of standard input
        #[arg(short, long, value_name = "FILE")]
        input: Option<String>,
        /// Suppress the load output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry
    Pull {
        #[arg(value_name = "IMAGE")]
        image: String,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Push an image to a registry
    Push {
        #[arg(value_name = "IMAGE")]
        image: String,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to a tar archive (like `docker save`; to standard output by default)
    Save {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
        /// Write to this file instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<String>,
        /// docker: `docker save`'s layout (OCI layout plus manifest.json); oci: an OCI layout
        #[arg(long, value_parser = ["docker", "oci"], default_value = "docker")]
        format: String,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag {
        #[arg(value_name = "SOURCE_IMAGE")]
        source: String,
        #[arg(value_name = "TARGET_IMAGE")]
        target: String,
    },
    /// Show the history of an image
    History(HistoryArgs),
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    pub format: String,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
}

fn store() -> Result<Store> {
    let path = crate::paths::images();
    Store::open(&path).with_context(|| format!("cannot open the image store {}", path.display()))
}

/// `name` normalised when it is a reference, as given when it is an id.
fn normalise(name: &str) -> String {
    match Reference::parse(name) {
        Ok(r) if !looks_like_id(name) => r.to_string(),
        _ => name.to_string(),
    }
}

fn looks_like_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() >= 12 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

fn short_id(img: &ImageRecord) -> String {
    img.id.hex()[..12].to_string()
}

pub fn run(global: &Global, args: ImageArgs) -> Result<i32> {
    match args.command {
        ImageCommand::Build(a) => super::build::image_build(global, *a),
        ImageCommand::Ls(a) => ls(a),
        ImageCommand::Inspect { images } => inspect(&images),
        ImageCommand::Rm { images, force } => rm(&images, force),
        ImageCommand::Prune { all, force: _ } => prune(all),
        ImageCommand::Push { image, quiet } => push(global, &image, quiet),
        ImageCommand::Pull { image, quiet } => pull(global, &image, quiet),
        ImageCommand::Import {
            file,
            reference,
            changes,
            platform,
        } => import(&file, reference.as_deref(), changes, platform.as_deref()),
        ImageCommand::Load { input, quiet } => load(input.as_deref().unwrap_or("-"), quiet),
        ImageCommand::Save {
            images,
            output,
            format,
        } => save(&images, output.as_deref(), &format),
        ImageCommand::Tag { source, target } => tag(&source, &target),
        ImageCommand::History(a) => history(&a),
    }
}

/// (repository, tag) pairs naming an image, `<none>` when nothing does.
fn names(store: &Store, img: &ImageRecord) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for r in store.refs_of(&img.id)? {
        match Reference::parse(&r) {
            Ok(parsed) => out.push((
                parsed.familiar_name(),
                parsed.tag.clone().unwrap_or_else(|| "<none>".to_string()),
            )),
            Err(_) => out.push((r, "<none>".into())),
        }
    }
    if out.is_empty() {
        out.push(("<none>".into(), "<none>".into()));
    }
    Ok(out)
}

fn ls(args: LsArgs) -> Result<i32> {
    let store = store()?;
    let images = store.images()?;
    if args.quiet {
        for img in &images {
            println!("{}", short_id(img));
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for img in &images {
        for (repo, tag) in names(&store, img)? {
            rows.push((repo, tag, img));
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if args.format == "json" {
        for (repo, tag, img) in rows {
            println!(
                "{}",
                json!({
                    "Repository": repo, "Tag": tag, "ID": short_id(img),
                    "Digest": img.repo_digests.first().and_then(|d| d.split('@').nth(1)).unwrap_or("<none>"),
                    "CreatedAt": img.created.clone().unwrap_or_default(),
                    "Size": human_bytes(img.size),
                })
            );
        }
        return Ok(0);
    }
    let mut table = vec![vec![
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    if args.digests {
        table[0].insert(2, "DIGEST".into());
    }
    for (repo, tag, img) in rows {
        let mut row = vec![
            repo,
            tag,
            short_id(img),
            img.created.clone().unwrap_or_else(|| "N/A".into()),
            human_bytes(img.size),
        ];
        if args.digests {
            let digest = img
                .repo_digests
                .first()
                .and_then(|d| d.split('@').nth(1))
                .unwrap_or("<none>")
                .to_string();
            row.insert(2, digest);
        }
        table.push(row);
    }
    print!("{}", super::table(&table));
    Ok(0)
}

fn inspect(images: &[String]) -> Result<i32> {
    let store = store()?;
    let mut out = Vec::new();
    for name in images {
        let img = store
            .resolve(&normalise(name))?
            .with_context(|| format!("no such image: {name}"))?;
        let tags: Vec<String> = names(&store, &img)?
            .into_iter()
            .filter(|(_, t)| t != "<none>")
            .map(|(r, t)| format!("{r}:{t}"))
            .collect();
        let layers: Vec<String> = img.layers.iter().map(|l| l.diff_id.to_string()).collect();
        out.push(json!({
            "Id": img.id.to_string(),
            "RepoTags": tags,
            "RepoDigests": img.repo_digests,
            "Created": img.created,
            "Architecture": img.architecture,
            "Os": img.os,
            "Size": img.size,
            "Config": img.config,
            "RootFS": { "Type": "layers", "Layers": layers },
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn rm(images: &[String], force: bool) -> Result<i32> {
    let store = store()?;
    let mut failed = false;
    for name in images {
        let key = normalise(name);
        let result = (|| -> Result<()> {
            let img = store
                .resolve(&key)?
                .with_context(|| format!("no such image: {name}"))?;
            let refs = store.refs_of(&img.id)?;
            if looks_like_id(name) && refs.len() > 1 && !force {
                bail!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_id(&img)
                );
            }
            let untagged: Vec<String> = if refs.contains(&key) {
                vec![key.clone()]
            } else {
                refs
            };
            let deleted = store.remove(&key)?;
            for r in untagged {
                println!(
                    "Untagged: {}",
                    Reference::parse(&r).map(|p| p.familiar()).unwrap_or(r)
                );
            }
            for d in deleted {
                println!("Deleted: {d}");
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("{} {e:#}", console::style("error:").red().bold());
            failed = true;
        }
    }
    Ok(i32::from(failed))
}

fn prune(all: bool) -> Result<i32> {
    let store = store()?;
    let freed = store.prune(&[], all)?;
    println!("Total reclaimed space: {}", human_bytes(freed));
    Ok(0)
}

fn push(global: &Global, image: &str, quiet: bool) -> Result<i32> {
    let reference =
        Reference::parse(image).with_context(|| format!("invalid image reference {image:?}"))?;
    let store = store()?;
    let record = store
        .resolve(&reference.to_string())?
        .with_context(|| format!("no such image: {image}"))?;
    push_images(global, &store, &[(record, reference)], quiet)?;
    Ok(0)
}

/// Pushes each image as its reference (used by `image push`, `push` and `build --push`).
pub fn push_images(
    global: &Global,
    store: &Store,
    images: &[(ImageRecord, Reference)],
    quiet: bool,
) -> Result<()> {
    let mode = if quiet {
        crate::image::progress::Mode::Quiet
    } else {
        progress_mode(global)
    };
    let pusher = crate::image::push::Pusher::new(
        store.clone(),
        Registries::load().context("cannot read the registries configuration")?,
        AuthStore::load().context("cannot read registry credentials")?,
        Progress::new(mode),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    for (record, reference) in images {
        runtime.block_on(pusher.push(record, reference))?;
    }
    Ok(())
}

fn pull(global: &Global, image: &str, quiet: bool) -> Result<i32> {
    let reference =
        Reference::parse(image).with_context(|| format!("invalid image reference {image:?}"))?;
    let mode = if quiet {
        crate::image::progress::Mode::Quiet
    } else {
        progress_mode(global)
    };
    let puller = Puller::new(
        store()?,
        Registries::load().context("cannot read the registries configuration")?,
        AuthStore::load().context("cannot read registry credentials")?,
        Progress::new(mode),
    );
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let pulled = runtime.block_on(puller.pull(&reference))?;
    if quiet {
        println!("{}", reference.familiar());
    } else {
        println!(
            "{}: {} new layer(s), {}",
            reference.familiar(),
            pulled.fetched_layers,
            human_bytes(pulled.fetched_bytes)
        );
    }
    Ok(0)
}

fn import(
    file: &str,
    reference: Option<&str>,
    changes: Vec<String>,
    platform: Option<&str>,
) -> Result<i32> {
    use crate::image::archive::{import, ImportOptions};
    use crate::image::reference::Platform;
    let reference = reference
        .map(|r| Reference::parse(r).with_context(|| format!("invalid image reference {r:?}")))
        .transpose()?;
    let platform = platform
        .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
        .transpose()?;
    let opts = ImportOptions {
        reference,
        changes,
        platform,
    };
    let input = open_input(file)?;
    let img = import(&store()?, input, &opts).with_context(|| format!("cannot import {file}"))?;
    println!("{}", img.id);
    Ok(0)
}

fn load(file: &str, quiet: bool) -> Result<i32> {
    let input = open_input(file)?;
    let loaded = crate::image::archive::load(&store()?, input)
        .with_context(|| format!("cannot load images from {file}"))?;
    if !quiet {
        for (img, tags) in loaded {
            if tags.is_empty() {
                println!("Loaded image ID: {}", img.id);
            }
            for t in tags {
                let shown = Reference::parse(&t).map(|r| r.familiar()).unwrap_or(t);
                println!("Loaded image: {shown}");
            }
        }
    }
    Ok(0)
}

fn save(images: &[String], output: Option<&str>, format: &str) -> Result<i32> {
    use crate::image::save::{save, SaveFormat, SaveImage};
    use std::io::IsTerminal;
    let store = store()?;
    // One entry per image, in the order first named, with every reference it was named by.
    let mut list: Vec<SaveImage> = Vec::new();
    for name in images {
        let img = store
            .resolve(&normalise(name))?
            .with_context(|| format!("no such image: {name}"))?;
        let tag = if looks_like_id(name) {
            None
        } else {
            Reference::parse(name).ok()
        };
        match list.iter_mut().find(|i| i.record.id == img.id) {
            Some(entry) => entry.tags.extend(tag),
            None => list.push(SaveImage {
                record: img,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    let format = if format == "oci" {
        SaveFormat::Oci
    } else {
        SaveFormat::Docker
    };
    let warnings = match output {
        Some(path) => {
            // Written beside the target and renamed: a failed save leaves no half archive.
            let dest = PathBuf::from(path);
            let tmp = dest.with_file_name(format!(
                ".{}.rcompose-{}",
                dest.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let result = save(&store, &list, format, std::io::BufWriter::new(file))
                .map_err(anyhow::Error::from)
                .and_then(|w| {
                    std::fs::rename(&tmp, &dest)
                        .with_context(|| format!("cannot write {}", dest.display()))?;
                    Ok(w)
                });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            save(&store, &list, format, stdout.lock())?
        }
    };
    for w in warnings {
        eprintln!("{} {w}", console::style("warning:").yellow().bold());
    }
    Ok(0)
}

fn tag(source: &str, target: &str) -> Result<i32> {
    let store = store()?;
    let img = store
        .resolve(&normalise(source))?
        .with_context(|| format!("no such image: {source}"))?;
    let target_ref =
        Reference::parse(target).with_context(|| format!("invalid reference format {target:?}"))?;
    if target_ref.digest.is_some() {
        bail!("refusing to create a tag with a digest reference: {target}");
    }
    store.tag(&target_ref.to_string(), &img.id)?;
    Ok(0)
}

/// One row of `image history`.
struct HistoryRow {
    id: String,
    created: Option<String>,
    created_by: String,
    size: u64,
    comment: String,
}

fn history(args: &HistoryArgs) -> Result<i32> {
    use crate::build::layer::History;
    let store = store()?;
    let img = store
        .resolve(&normalise(&args.image))?
        .with_context(|| format!("no such image: {}", args.image))?;
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&img.id)?)
        .with_context(|| format!("image {}: cannot read its config", img.id))?;
    let entries: Vec<History> = match config.get("history") {
        Some(h) if !h.is_null() => serde_json::from_value(h.clone())
            .with_context(|| format!("image {}: cannot read its history", img.id))?,
        _ => Vec::new(),
    };
    let mut layers = img.layers.iter();
    let mut rows: Vec<HistoryRow> = entries
        .into_iter()
        .map(|h| {
            let size = if h.empty_layer {
                0
            } else {
                layers
                    .next()
                    .map(|l| layer_size(&store.layer_dir(&l.diff_id)))
                    .unwrap_or(0)
            };
            HistoryRow {
                id: "<missing>".into(),
                created: h.created,
                created_by: h.created_by.unwrap_or_default(),
                size,
                comment: h.comment.unwrap_or_default(),
            }
        })
        .collect();
    rows.reverse();
    // Like docker: only the newest entry is the image itself.
    if let Some(first) = rows.first_mut() {
        first.id = if args.no_trunc {
            img.id.to_string()
        } else {
            short_id(&img)
        };
    }
    if args.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(0);
    }
    let now = std::time::SystemTime::now();
    let shown: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let created = r.created.clone().unwrap_or_default();
            let created = match (args.human, crate::logs::timefmt::parse_timestamp(&created)) {
                (true, Some(t)) => format!(
                    "{} ago",
                    super::project::human_duration(now.duration_since(t).unwrap_or_default())
                ),
                (true, None) => "N/A".into(),
                (false, _) => created,
            };
            let mut by = r.created_by.replace('\t', " ");
            if !args.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            let size = if args.human {
                human_bytes(r.size)
            } else {
                r.size.to_string()
            };
            [r.id.clone(), created, by, size, r.comment.clone()]
        })
        .collect();
    if args.format == "json" {
        for (r, s) in rows.iter().zip(&shown) {
            println!(
                "{}",
                json!({
                    "Comment": s[4], "CreatedAt": r.created.clone().unwrap_or_default(),
                    "CreatedBy": s[2], "CreatedSince": s[1], "ID": s[0], "Size": s[3],
                })
            );
        }
        return Ok(0);
    }
    let mut table = vec![vec![
        "IMAGE".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    table.extend(shown.into_iter().map(Vec::from));
    print!("{}", super::table(&table));
    Ok(0)
}

/// Bytes of the regular files in a layer directory, each inode once (docker's layer size).
fn layer_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    // An explicit stack: a layer's depth is up to whoever made it.
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// `rcompose images`: the images the project's services use, as present in the store.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Services (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    pub format: String,
}

pub fn images(global: &Global, args: ImagesArgs) -> Result<i32> {
    let opts = global.load_options()?;
    let loaded = super::load(global, &opts)?;
    let services = super::pull::selected_services(&loaded.project, &args.services, false)?;
    let store = store()?;
    let mut rows = vec![vec![
        "SERVICE".to_string(),
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    let mut json_rows = Vec::new();
    for name in services {
        let service = &loaded.project.services[&name];
        if service.image.is_empty() && service.build.is_none() {
            continue;
        }
        let image = super::build::image_name(&loaded.project, service);
        let Ok(reference) = Reference::parse(&image) else {
            continue;
        };
        let Some(img) = store.resolve(&reference.to_string())? else {
            continue;
        };
        if args.quiet {
            println!("{}", img.id);
            continue;
        }
        let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
        json_rows.push(json!({
            "Service": name, "Repository": reference.familiar_name(), "Tag": tag,
            "ID": img.id.to_string(), "Size": img.size,
        }));
        rows.push(vec![
            name,
            reference.familiar_name(),
            tag,
            short_id(&img),
            human_bytes(img.size),
        ]);
    }
    if args.quiet {
        return Ok(0);
    }
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&json_rows)?);
    } else {
        print!("{}", super::table(&rows));
    }
    Ok(0)
}

/// Read a whole file, or standard input for `-`.
pub fn open_input(path: &str) -> Result<Box<dyn Read>> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let p = PathBuf::from(path);
    let f = std::fs::File::open(&p).with_context(|| format!("cannot open {}", p.display()))?;
    Ok(Box::new(std::io::BufReader::new(f)))
}
