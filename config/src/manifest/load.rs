//! Loading manifests from a file or a folder: reading, splitting into YAML documents, picking
//! out Brokers and Triggers, and validating each one.
//!
//! Loading takes two passes: every document is parsed first, so that the Brokers and the
//! objects annotated with [`URL_ANNOTATION`] are all known before a `ref` to one of them is
//! resolved ([`LocalRefs`]); the Brokers and Triggers are validated afterwards.
//!
//! Loading never fails as a whole. Each object is loaded on its own, and an invalid one comes
//! back with its problems (so the runtime can show it as not ready, with the reason) instead of
//! stopping the others. What cannot be tied to a Broker or Trigger (an unreadable file, a YAML
//! syntax error, a document without kind or name, another kind of object) is listed in
//! [`Manifests::problems`].
//!
//! What could not be read or parsed at all is also listed in [`Manifests::unread`]: nobody
//! can tell which objects such a file or folder holds, so a watcher must not take their
//! absence for a deletion. [`Manifests::carry_over`] keeps, from the previous snapshot, the
//! objects an unreadable place held, marked invalid with the reason.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::manifest::documents::{self, Document};
use crate::manifest::problem::{FieldError, Location, Problem};
use crate::manifest::types::{
    Broker, DEFAULT_NAMESPACE, EVENTING_API_VERSION, Trigger, URL_ANNOTATION,
};
use crate::manifest::validate::{LocalRefs, url_annotation};
use crate::model::{BrokerConfig, ObjectKey, TriggerConfig};

/// Everything found under a manifest path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifests {
    /// Every Broker, valid or not, in file and document order.
    pub brokers: Vec<Loaded<BrokerConfig>>,
    /// Every Trigger, valid or not, in file and document order.
    pub triggers: Vec<Loaded<TriggerConfig>>,
    /// Problems not tied to a loaded object: unreadable files, YAML syntax errors, documents
    /// without kind or name, ignored kinds, duplicates.
    pub problems: Vec<Problem>,
    /// The files, folders and documents that could not be read or parsed into objects
    /// (document 0: the whole file or folder). What they hold is unknown, not absent.
    pub unread: Vec<Location>,
}

impl Manifests {
    /// Keeps what an unreadable place held: every object of `previous` read from a file,
    /// folder or document that could not be read or parsed this time, and that is not in
    /// this snapshot, is added back as invalid, with the reason. The runtime then keeps what
    /// it runs for it (its storage, and its last valid version) instead of deleting it.
    pub fn carry_over(&mut self, previous: &Manifests) {
        // Why the place holding `source` could not be read, if one could not.
        let unread = |source: &Location| {
            let place = self.unread.iter().find(|place| holds(place, source))?;
            let problem = self
                .problems
                .iter()
                .find(|p| p.file == place.file && p.document == place.document);
            let why = problem.map_or("could not be read", |p| p.message.as_str());
            Some(
                if place.file == source.file && place.document == source.document {
                    why.to_owned()
                } else {
                    format!("{place} {why}")
                },
            )
        };
        let mut brokers = Vec::new();
        for old in &previous.brokers {
            if let Some(reason) = unread(&old.source)
                && !self.brokers.iter().any(|b| b.key == old.key)
            {
                brokers.push(unreadable(old, "Broker", reason));
            }
        }
        let mut triggers = Vec::new();
        for old in &previous.triggers {
            if let Some(reason) = unread(&old.source)
                && !self.triggers.iter().any(|t| t.key == old.key)
            {
                triggers.push(unreadable(old, "Trigger", reason));
            }
        }
        self.brokers.extend(brokers);
        self.triggers.extend(triggers);
    }

    /// Every problem: those in [`Manifests::problems`], then those of invalid objects.
    pub fn all_problems(&self) -> impl Iterator<Item = &Problem> {
        let invalid_brokers = self.brokers.iter().flat_map(Loaded::problems);
        let invalid_triggers = self.triggers.iter().flat_map(Loaded::problems);
        self.problems
            .iter()
            .chain(invalid_brokers)
            .chain(invalid_triggers)
    }
}

/// One Broker or Trigger read from the manifests, valid or not.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded<T> {
    /// The object's `namespace/name`, readable even when the object is invalid.
    pub key: ObjectKey,
    /// Where it was read from.
    pub source: Location,
    /// The validated object, or why it is invalid.
    pub config: Result<T, Vec<Problem>>,
}

impl<T> Loaded<T> {
    /// The object's problems; empty when it is valid.
    pub fn problems(&self) -> &[Problem] {
        self.config.as_ref().err().map_or(&[], Vec::as_slice)
    }
}

/// Whether an object read from `source` may be held by the unreadable `place`: its folder,
/// its file, or (unless the whole file was unreadable) its document.
fn holds(place: &Location, source: &Location) -> bool {
    source.file.starts_with(&place.file)
        && (place.document == 0 || place.document == source.document)
}

/// `old` as an object whose manifest could not be read this time.
fn unreadable<T>(old: &Loaded<T>, kind: &str, reason: String) -> Loaded<T> {
    let message =
        format!("cannot be read now, so nothing it held was changed or deleted: {reason}");
    Loaded {
        key: old.key.clone(),
        source: old.source.clone(),
        config: Err(vec![
            Problem::new(&old.source, message).with_object(format!("{kind} {}", old.key)),
        ]),
    }
}

/// Loads every Broker and Trigger under `path`: a single file (whatever its name), or a folder
/// searched recursively for `.yaml` and `.yml` files, in path order. Hidden files and folders
/// and editor leftovers (`*~`, `.#*`, `*.swp`) are skipped. Never fails as a whole: what cannot
/// be loaded is reported in the result.
///
/// A `ref` to a Broker has no URL here (no ingress listens): use [`load_path_with`] where
/// one does.
pub fn load_path(path: &Path) -> Manifests {
    load_path_with(path, None)
}

/// [`load_path`] for a process whose ingress answers at `ingress` (e.g.
/// `http://127.0.0.1:8080`): a `ref` to a Broker in the manifests resolves to
/// `<ingress>/<namespace>/<name>`.
pub fn load_path_with(path: &Path, ingress: Option<&Url>) -> Manifests {
    let mut loader = Loader::new(ingress);
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mut files = Vec::new();
            let mut visited = HashSet::new();
            let mut unread = Vec::new();
            collect_files(path, &mut files, &mut visited, &mut unread);
            for (place, problem) in unread {
                loader.unread(place, problem);
            }
            files.sort();
            for file in files {
                loader.add_file(&file);
            }
        }
        Ok(_) => loader.add_file(path),
        Err(error) => loader.unread(
            whole_file(path),
            format!("cannot be read: {}", io_message(&error)),
        ),
    }
    loader.finish()
}

/// What a cheap look at `path` sees of its manifest files: each file's path, size,
/// modification time (and inode, on Unix), in path order. Two equal fingerprints mean the
/// files were, in all likelihood, not touched in between; a watcher polls this rather than
/// parsing every file again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, Option<FileStamp>)>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

/// Takes the [`Fingerprint`] of the manifest files [`load_path`] would read under `path`.
pub fn fingerprint(path: &Path) -> Fingerprint {
    let mut files = Vec::new();
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            collect_files(path, &mut files, &mut HashSet::new(), &mut Vec::new());
            files.sort();
        }
        _ => files.push(path.to_path_buf()),
    }
    let stamps = files
        .into_iter()
        .map(|file| {
            let stamp = fs::metadata(&file).ok().map(|meta| FileStamp::of(&meta));
            (file, stamp)
        })
        .collect();
    Fingerprint(stamps)
}

/// Loads the manifests in `text` as if read from `file` (which is only used in problems).
pub fn load_str(text: &str, file: &Path) -> Manifests {
    load_str_with(text, file, None)
}

/// [`load_str`] for a process whose ingress answers at `ingress` (see [`load_path_with`]).
pub fn load_str_with(text: &str, file: &Path, ingress: Option<&Url>) -> Manifests {
    let mut loader = Loader::new(ingress);
    loader.add_text(text, file);
    loader.finish()
}

fn whole_file(file: &Path) -> Location {
    Location {
        file: file.to_path_buf(),
        document: 0,
    }
}

/// An I/O error as a lowercase phrase.
fn io_message(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
        _ => {
            let text = error.to_string();
            let mut chars = text.chars();
            chars.next().map_or(text.clone(), |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
    }
}

/// Whether a folder entry is hidden or an editor's temporary file.
fn is_skipped_name(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('#') || name.ends_with('~') || name.ends_with(".swp")
}

fn is_manifest_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Adds the manifest files under `dir` to `files`. Symbolic links are followed (a mounted
/// Kubernetes ConfigMap is made of them); `visited` stops a link from looping back. What
/// cannot be listed or looked at goes to `unread`, with why.
fn collect_files(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    unread: &mut Vec<(Location, String)>,
) {
    if let Ok(canonical) = fs::canonicalize(dir)
        && !visited.insert(canonical)
    {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            let message = format!("cannot be read: {}", io_message(&error));
            unread.push((whole_file(dir), message));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                let message = format!("cannot be listed: {}", io_message(&error));
                unread.push((whole_file(dir), message));
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_skipped_name(&name) {
            continue;
        }
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => collect_files(&path, files, visited, unread),
            Ok(_) if is_manifest_name(&name) => files.push(path),
            Ok(_) => {}
            Err(error) if is_manifest_name(&name) => {
                let message = format!("cannot be read: {}", io_message(&error));
                unread.push((whole_file(&path), message));
            }
            Err(_) => {}
        }
    }
}

/// Accumulates what the files hold, remembering each object's first appearance.
struct Loader {
    manifests: Manifests,
    seen: HashMap<(&'static str, ObjectKey), Location>,
    /// Objects defined more than once, with every place after the first.
    duplicates: HashMap<(&'static str, ObjectKey), Vec<Location>>,
    /// What a `ref` means: the Brokers and annotated objects found so far.
    refs: LocalRefs,
    /// The Brokers and Triggers read, validated once every document has been read.
    pending: Vec<Pending>,
}

/// A Broker or Trigger read but not validated yet.
struct Pending {
    kind: &'static str,
    key: ObjectKey,
    source: Location,
    /// `Kind namespace/name`, for its problems.
    label: String,
    value: Value,
}

impl Loader {
    fn new(ingress: Option<&Url>) -> Self {
        Loader {
            manifests: Manifests::default(),
            seen: HashMap::new(),
            duplicates: HashMap::new(),
            refs: LocalRefs::new(ingress.cloned()),
            pending: Vec::new(),
        }
    }

    /// Notes a place that could not be read or parsed, and why.
    fn unread(&mut self, place: Location, message: String) {
        self.manifests.problems.push(Problem::new(&place, message));
        self.manifests.unread.push(place);
    }

    fn add_file(&mut self, file: &Path) {
        match fs::read_to_string(file) {
            Ok(text) => self.add_text(&text, file),
            Err(error) => self.unread(
                whole_file(file),
                format!("cannot be read: {}", io_message(&error)),
            ),
        }
    }

    /// A name defined twice is an error on each: which one the user meant is unknown, so
    /// neither replaces what runs (the runtime keeps the last valid version, if any).
    fn finish(mut self) -> Manifests {
        for pending in std::mem::take(&mut self.pending) {
            let Pending {
                kind,
                key,
                source,
                label,
                value,
            } = pending;
            let place = |errors| place(&source, &label, errors);
            if kind == "Broker" {
                let config = typed::<Broker>(value).and_then(|b| b.validate_with(&self.refs));
                let config = config.map_err(place);
                self.manifests.brokers.push(Loaded {
                    key,
                    source,
                    config,
                });
            } else {
                let config = typed::<Trigger>(value).and_then(|t| t.validate_with(&self.refs));
                let config = config.map_err(place);
                self.manifests.triggers.push(Loaded {
                    key,
                    source,
                    config,
                });
            }
        }
        for ((kind, key), others) in &self.duplicates {
            let first = &self.seen[&(*kind, key.clone())];
            let places: Vec<String> = std::iter::once(first)
                .chain(others)
                .map(Location::to_string)
                .collect();
            let message = format!(
                "is defined more than once (in {}); names must be unique per namespace, so \
                 none of these is used until only one remains",
                places.join(" and ")
            );
            let label = format!("{kind} {key}");
            let problems = |source: &Location| {
                vec![Problem::new(source, message.clone()).with_object(label.clone())]
            };
            if *kind == "Broker" {
                if let Some(b) = self.manifests.brokers.iter_mut().find(|b| b.key == *key) {
                    b.config = Err(problems(&b.source));
                }
            } else if let Some(t) = self.manifests.triggers.iter_mut().find(|t| t.key == *key) {
                t.config = Err(problems(&t.source));
            }
        }
        self.manifests
    }

    fn add_text(&mut self, text: &str, file: &Path) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for document in documents::split(text) {
            let source = Location {
                file: file.to_path_buf(),
                document: document.number,
            };
            match parse_yaml(&document) {
                Ok(Some(value)) => self.add_value(&source, value),
                Ok(None) => {}
                Err(message) => self.unread(source, message),
            }
        }
    }

    fn add_value(&mut self, source: &Location, value: Value) {
        let Value::Object(object) = &value else {
            let message = "is not a Kubernetes object; expected a mapping with apiVersion, \
                           kind and metadata";
            self.manifests.problems.push(Problem::new(source, message));
            return;
        };
        let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_owned();
        let api_version = text(object.get("apiVersion"));
        let kind = text(object.get("kind"));
        let metadata = object.get("metadata");
        let name = text(metadata.and_then(|m| m.get("name")));
        let namespace = match text(metadata.and_then(|m| m.get("namespace"))) {
            namespace if namespace.is_empty() => DEFAULT_NAMESPACE.to_owned(),
            namespace => namespace,
        };
        if kind.is_empty() {
            let message = "is missing; every manifest needs apiVersion, kind and metadata.name";
            let problem = Problem::new(source, message).with_field("kind");
            self.manifests.problems.push(problem);
            self.manifests.unread.push(source.clone());
            return;
        }
        if api_version == "v1" && kind == "List" {
            let items = object.get("items").and_then(Value::as_array);
            for item in items.cloned().unwrap_or_default() {
                self.add_value(source, item);
            }
            return;
        }
        let label = match name.as_str() {
            "" => kind.clone(),
            name => format!("{kind} {namespace}/{name}"),
        };
        let kind: &'static str = match (api_version.as_str(), kind.as_str()) {
            (EVENTING_API_VERSION, "Broker") => "Broker",
            (EVENTING_API_VERSION, "Trigger") => "Trigger",
            (_, "Broker" | "Trigger") => {
                let message = format!(
                    "{api_version:?} is not read, so this object is ignored; \
                     use {EVENTING_API_VERSION}"
                );
                let problem = Problem::new(source, message)
                    .with_object(label)
                    .with_field("apiVersion");
                self.manifests.problems.push(problem);
                self.manifests.unread.push(source.clone());
                return;
            }
            _ => {
                let annotations = metadata.and_then(|m| m.get("annotations"));
                if let Some(url) = annotations.and_then(|a| a.get(URL_ANNOTATION)) {
                    let target = (api_version.as_str(), kind.as_str(), name.as_str());
                    self.add_url(source, &label, target, namespace, url);
                    return;
                }
                let message = format!(
                    "is ignored; weft reads only {EVENTING_API_VERSION} Broker and Trigger \
                     objects, not {}",
                    format!("{api_version} {kind}").trim_start()
                );
                let problem = Problem::new(source, message).with_object(label);
                self.manifests.problems.push(problem);
                return;
            }
        };
        if name.is_empty() {
            let message = format!("is missing; every {kind} needs a name");
            let problem = Problem::new(source, message)
                .with_object(label)
                .with_field("metadata.name");
            self.manifests.problems.push(problem);
            self.manifests.unread.push(source.clone());
            return;
        }
        let key = ObjectKey::new(namespace, name);
        if let Some(first) = self.seen.get(&(kind, key.clone())) {
            let message = format!("duplicates the {kind} in {first}; neither is used");
            let problem = Problem::new(source, message).with_object(label);
            self.manifests.problems.push(problem);
            let places = self.duplicates.entry((kind, key)).or_default();
            places.push(source.clone());
            return;
        }
        self.seen.insert((kind, key.clone()), source.clone());
        if kind == "Broker" {
            self.refs.add_broker(key.clone());
        }
        self.pending.push(Pending {
            kind,
            key,
            source: source.clone(),
            label,
            value,
        });
    }

    /// Notes an object (`apiVersion`, `kind`, `name`) whose [`URL_ANNOTATION`] is `url`: a
    /// ref to it means that URL.
    fn add_url(
        &mut self,
        source: &Location,
        label: &str,
        (api_version, kind, name): (&str, &str, &str),
        namespace: String,
        url: &Value,
    ) {
        let field = format!("metadata.annotations[{URL_ANNOTATION}]");
        if name.is_empty() {
            let message = "is missing; an object with a URL annotation needs the name refs use";
            let problem = Problem::new(source, message)
                .with_object(label)
                .with_field("metadata.name");
            self.manifests.problems.push(problem);
            return;
        }
        let key = ObjectKey::new(namespace, name);
        if self.refs.has_url(api_version, kind, &key) {
            let message = "is defined more than once; refs to it use neither";
            let problem = Problem::new(source, message).with_object(label);
            self.manifests.problems.push(problem);
        }
        let url = match url.as_str() {
            Some(text) => url_annotation(text),
            None => Err(format!("{url} is not a string; give the URL as text")),
        };
        if let Err(message) = &url {
            let problem = Problem::new(source, message.as_str())
                .with_object(label)
                .with_field(field);
            self.manifests.problems.push(problem);
        }
        let url = url.map_err(|_| {
            format!("has an invalid {URL_ANNOTATION} annotation (see the problem reported on it)")
        });
        self.refs.add_url(api_version, kind, key, url);
    }
}

/// Validates one Broker read from `source` (a file, or a cluster: see
/// [`crate::crd::load_broker_resource`]).
pub fn load_broker(broker: &Broker, source: &Location) -> Loaded<BrokerConfig> {
    let key = broker.metadata.key();
    let label = format!("Broker {key}");
    Loaded {
        config: broker
            .validate()
            .map_err(|errors| place(source, &label, errors)),
        key,
        source: source.clone(),
    }
}

/// Validates one Trigger read from `source` (a file, or a cluster: see
/// [`crate::crd::load_trigger_resource`]).
pub fn load_trigger(trigger: &Trigger, source: &Location) -> Loaded<TriggerConfig> {
    let key = trigger.metadata.key();
    let label = format!("Trigger {key}");
    Loaded {
        config: trigger
            .validate()
            .map_err(|errors| place(source, &label, errors)),
        key,
        source: source.clone(),
    }
}

/// Places the validation errors of the object `label` (`Kind namespace/name`) at `source`.
fn place(source: &Location, label: &str, errors: Vec<FieldError>) -> Vec<Problem> {
    errors
        .into_iter()
        .map(|error| Problem::from_field_error(source, label, error))
        .collect()
}

/// Parses one document into a JSON value, as Kubernetes does; `None` for an empty document.
fn parse_yaml(document: &Document<'_>) -> Result<Option<Value>, String> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(document.text, options).map_err(|error| {
        let render = serde_saphyr::render_options! {
            formatter: &serde_saphyr::UserMessageFormatter,
            snippets: serde_saphyr::SnippetMode::Off,
            line_offset: document.line_offset as u64,
        };
        format!("is not valid YAML: {}", error.render_with_options(render))
    })
}

/// Reads a typed object from a value, naming the field that does not fit.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Vec<FieldError>> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = match error.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        vec![FieldError::new(field, error.into_inner().to_string())]
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ref_tests;
