//! No import circles: within each crate listed in [`CHECKED`], the modules use each other
//! without a circle, so that each crate reads bottom-up and a shared item sits below
//! everything that uses it.
//!
//! A module is a file (or an inline `mod { }`). It uses another module when it names one of
//! its items with a `crate::`, `super::` or `self::` path, in a `use` or inline; a name
//! brought in by a `use` (a re-export) counts as the module that defines it. Two graphs
//! must be free of circles:
//! - modules: `a` uses `b` uses `a` (a parent counts too: a parent that uses its child, whose
//!   code uses what the parent defines, is a circle; a parent that only re-exports a child is
//!   not);
//! - subtrees: under each parent, no child subtree uses another that uses it back
//!   (`crd::*` uses `manifest::*` uses `crd::*`), even when no two files form a circle.
//!
//! Test modules (`#[cfg(test)]`) are left out: they sit on top of what they test.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use syn::visit::Visit;
use syn::{Attribute, Item, UseTree, Visibility};

/// The crates whose modules must form no circle, by folder (`.`: the `weft` binary).
const CHECKED: [&str; 8] = [
    ".",
    "bench",
    "broker",
    "channels",
    "config",
    "e2e",
    "sources",
    "trigger-controller",
];

/// Subtrees of checked crates whose circles are still to break.
const NOT_YET: [(&str, &str); 0] = [];

/// A path, as its segments (`crate::a::B` is `["a", "B"]` once absolute).
type Segments = Vec<String>;

/// What one module names.
#[derive(Default)]
struct Module {
    /// Every `crate`/`super`/`self` path it names, as written, with whether it is a public
    /// re-export (`pub use`, `pub(crate) use`).
    paths: Vec<(Segments, bool)>,
    /// Names its module-level `use` items bring in, and what they name (as written).
    aliases: BTreeMap<String, Segments>,
}

/// The modules of one crate, by absolute path (`[]` is the crate root).
#[derive(Default)]
struct Crate {
    modules: BTreeMap<Segments, Module>,
}

impl Crate {
    /// Reads the crate whose `src/` is `src`.
    fn read(src: &Path) -> Crate {
        let mut krate = Crate::default();
        let root = ["lib.rs", "main.rs"]
            .map(|f| src.join(f))
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{} has no lib.rs or main.rs", src.display()));
        let file = parse(&root);
        krate.add(Vec::new(), &file.items, src);
        krate
    }

    /// Adds the module at `path` with `items`; the files of its `mod x;` children are in
    /// `dir`.
    fn add(&mut self, path: Segments, items: &[Item], dir: &Path) {
        let mut module = Module::default();
        let mut collector = Collector::default();
        for item in items {
            if is_test(item_attrs(item)) {
                continue;
            }
            match item {
                Item::Mod(child) => {
                    let mut child_path = path.clone();
                    child_path.push(child.ident.to_string());
                    let name = child.ident.to_string();
                    match &child.content {
                        Some((_, items)) => self.add(child_path, items, &dir.join(&name)),
                        None => {
                            let child_dir = dir.join(&name);
                            let file = [dir.join(format!("{name}.rs")), child_dir.join("mod.rs")]
                                .into_iter()
                                .find(|file| file.is_file())
                                .unwrap_or_else(|| panic!("no file for mod {name} in {dir:?}"));
                            self.add(child_path, &parse(&file).items, &child_dir);
                        }
                    }
                }
                Item::Use(using) => {
                    let public = !matches!(using.vis, Visibility::Inherited);
                    for (segments, alias) in expand(&using.tree) {
                        if let Some(alias) = alias {
                            module.aliases.insert(alias, segments.clone());
                        }
                        module.paths.push((segments, public));
                    }
                }
                other => collector.visit_item(other),
            }
        }
        module
            .paths
            .extend(collector.paths.into_iter().map(|p| (p, false)));
        self.modules.insert(path, module);
    }

    /// The absolute form of `written`, named in module `at`; `None` for another crate's.
    fn absolute(&self, at: &[String], written: &[String]) -> Option<Segments> {
        let first = written.first()?;
        match first.as_str() {
            "crate" => Some(written[1..].to_vec()),
            "super" | "self" => {
                let mut base = at.to_vec();
                let mut rest = written;
                while let Some(step) = rest.first() {
                    match step.as_str() {
                        "super" => {
                            base.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                base.extend_from_slice(rest);
                Some(base)
            }
            // `use child::Item` names a child module without `self::`.
            _ => {
                let mut child = at.to_vec();
                child.push(first.clone());
                self.modules.contains_key(&child).then(|| {
                    child.extend_from_slice(&written[1..]);
                    child
                })
            }
        }
    }

    /// The module that defines what the absolute `path` names, following `use` aliases.
    fn defining(&self, path: &[String], depth: usize) -> Segments {
        let mut k = path.len();
        while !self.modules.contains_key(&path[..k]) {
            k -= 1; // the crate root always exists
        }
        let module = &path[..k];
        let Some(name) = path.get(k) else {
            return module.to_vec();
        };
        let alias = self.modules[module].aliases.get(name);
        match alias.and_then(|written| self.absolute(module, written)) {
            Some(mut target) if depth < 16 => {
                target.extend_from_slice(&path[k + 1..]);
                self.defining(&target, depth + 1)
            }
            _ => module.to_vec(),
        }
    }

    /// Which modules each module uses.
    fn edges(&self) -> BTreeMap<Segments, BTreeSet<Segments>> {
        let mut edges: BTreeMap<Segments, BTreeSet<Segments>> = BTreeMap::new();
        for (at, module) in &self.modules {
            for (written, public) in &module.paths {
                let Some(path) = self.absolute(at, written) else {
                    continue;
                };
                let target = self.defining(&path, 0);
                let reexports_own_child = *public && target.starts_with(at);
                if &target != at && !reexports_own_child {
                    edges.entry(at.clone()).or_default().insert(target);
                }
            }
        }
        edges
    }
}

/// Every `crate`/`super`/`self` path, and every path that may start with a child module's
/// name, in the items it visits, `use` items in function bodies
/// included; test items and inline modules (read on their own) are skipped.
#[derive(Default)]
struct Collector {
    paths: Vec<Segments>,
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast Item) {
        if !is_test(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    // `pub(super)`, `pub(in crate::a)`: who may see an item, not a use.
    fn visit_visibility(&mut self, _: &'ast Visibility) {}

    fn visit_item_use(&mut self, using: &'ast syn::ItemUse) {
        self.paths
            .extend(expand(&using.tree).into_iter().map(|(path, _)| path));
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
        // `crate::`, `super::`, `self::`, and `child::item` (a child module named without
        // `self::`; other first segments, other crates' or types', are dropped later).
        if path.leading_colon.is_none()
            && (segments.len() > 1
                || segments
                    .first()
                    .is_some_and(|s| matches!(s.as_str(), "crate" | "super" | "self")))
        {
            self.paths.push(segments);
        }
        syn::visit::visit_path(self, path);
    }
}

/// The paths a `use` tree names, each with the name it brings in (none for a glob).
fn expand(tree: &UseTree) -> Vec<(Segments, Option<String>)> {
    match tree {
        UseTree::Path(p) => {
            let segment = p.ident.to_string();
            expand(&p.tree)
                .into_iter()
                .map(|(mut rest, alias)| {
                    // `a::{self}` brings in `a`.
                    let alias = alias.map(|a| if a == "self" { segment.clone() } else { a });
                    rest.insert(0, segment.clone());
                    (rest, alias)
                })
                .collect()
        }
        UseTree::Name(n) if n.ident == "self" => vec![(Vec::new(), Some("self".into()))],
        UseTree::Name(n) => vec![(vec![n.ident.to_string()], Some(n.ident.to_string()))],
        UseTree::Rename(r) if r.ident == "self" => vec![(Vec::new(), Some(r.rename.to_string()))],
        UseTree::Rename(r) => vec![(vec![r.ident.to_string()], Some(r.rename.to_string()))],
        UseTree::Glob(_) => vec![(Vec::new(), None)],
        UseTree::Group(g) => g.items.iter().flat_map(expand).collect(),
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Whether the attributes include `#[cfg(test)]`.
fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .meta
                .require_list()
                .is_ok_and(|list| list.tokens.to_string() == "test")
    })
}

fn parse(file: &Path) -> syn::File {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {file:?}: {e}"))
}

/// The groups of nodes that use each other in a circle (strongly connected components of
/// more than one node), by Tarjan's algorithm.
fn circles(edges: &BTreeMap<Segments, BTreeSet<Segments>>) -> Vec<Vec<Segments>> {
    struct Search<'a> {
        edges: &'a BTreeMap<Segments, BTreeSet<Segments>>,
        index: BTreeMap<&'a Segments, (usize, usize)>,
        stack: Vec<&'a Segments>,
        found: Vec<Vec<Segments>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, node: &'a Segments) {
            let n = self.index.len();
            self.index.insert(node, (n, n));
            self.stack.push(node);
            let edges = self.edges;
            for next in edges.get(node).into_iter().flatten() {
                match self.index.get(next) {
                    None => {
                        self.visit(next);
                        let low = self.index[next].1;
                        let entry = self.index.get_mut(node).unwrap();
                        entry.1 = entry.1.min(low);
                    }
                    Some(&(i, _)) if self.stack.contains(&next) => {
                        let entry = self.index.get_mut(node).unwrap();
                        entry.1 = entry.1.min(i);
                    }
                    Some(_) => {}
                }
            }
            let (i, low) = self.index[node];
            if i == low {
                let at = self.stack.iter().rposition(|n| *n == node).unwrap();
                let group: Vec<Segments> = self.stack.drain(at..).map(|n| n.to_vec()).collect();
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut search = Search {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !search.index.contains_key(node) {
            search.visit(node);
        }
    }
    search.found
}

/// The circles in the crate whose `src/` is `src`, each described with the uses that make
/// it; circles within one of the subtrees `skip` are left out.
fn crate_circles(src: &Path, skip: &[Segments]) -> Vec<String> {
    let edges = Crate::read(src).edges();
    // Under each parent, child subtree `a` uses child subtree `b` when a module in `a` uses
    // one in `b`.
    let mut subtrees: BTreeMap<Segments, BTreeSet<Segments>> = BTreeMap::new();
    for (from, targets) in &edges {
        for to in targets {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                subtrees
                    .entry(from[..=common].to_vec())
                    .or_default()
                    .insert(to[..=common].to_vec());
            }
        }
    }
    let name = |m: &Segments| {
        format!(
            "crate{}",
            m.iter().map(|s| format!("::{s}")).collect::<String>()
        )
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for (kind, graph) in [("modules", &edges), ("subtrees", &subtrees)] {
        for group in circles(graph) {
            // Sibling modules in a circle are sibling subtrees in the same circle.
            let skipped = skip
                .iter()
                .any(|subtree| group.iter().all(|m| m.starts_with(subtree)));
            if skipped || seen.contains(&group) {
                continue;
            }
            seen.push(group.clone());
            let uses: Vec<String> = group
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| group.contains(to))
                        .map(move |to| format!("{} -> {}", name(from), name(to)))
                })
                .collect();
            out.push(format!(
                "{}: {kind} in a circle: {}",
                src.display(),
                uses.join(", ")
            ));
        }
    }
    out
}

#[test]
fn the_modules_of_each_crate_use_each_other_without_a_circle() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found: Vec<String> = CHECKED
        .iter()
        .flat_map(|krate| {
            let skip: Vec<Segments> = NOT_YET
                .iter()
                .filter(|(k, _)| k == krate)
                .map(|(_, subtree)| subtree.split("::").map(String::from).collect())
                .collect();
            crate_circles(&workspace.join(krate).join("src"), &skip)
        })
        .collect();
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn a_circle_through_a_reexport_or_between_subtrees_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let file = dir.path().join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    };
    // error uses reply's type through the parent's re-export; reply uses error.
    write(
        "a/lib.rs",
        "mod error; mod reply; pub use reply::ReplyError;\n",
    );
    write(
        "a/error.rs",
        "use crate::ReplyError; pub enum E { R(ReplyError) }\n",
    );
    write(
        "a/reply.rs",
        "pub enum ReplyError {} pub fn f(_: super::error::E) {}\n",
    );
    let found = crate_circles(&dir.path().join("a"), &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("crate::error -> crate::reply")
            && found[0].contains("crate::reply -> crate::error"),
        "{found:?}"
    );

    // manifest::types uses crd::status; crd (a facade) re-exports manifest::types: no two
    // files form a circle, but the subtrees do.
    write(
        "b/lib.rs",
        "pub mod crd; pub mod manifest;\n#[cfg(test)] mod tests { use crate::crd::*; }\n",
    );
    write(
        "b/crd/mod.rs",
        "pub mod status; pub use crate::manifest::types::Spec;\n",
    );
    write("b/crd/status.rs", "pub struct Status;\n");
    write("b/manifest/mod.rs", "pub mod types;\n");
    write(
        "b/manifest/types.rs",
        "pub struct Spec { pub status: crate::crd::status::Status }\n",
    );
    let found = crate_circles(&dir.path().join("b"), &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("subtrees"), "{found:?}");

    // A child using its parent's own items while the parent uses the child's is a circle;
    // a parent that only re-exports a child, and test modules, are not.
    write(
        "c/lib.rs",
        "mod attempt; mod outcome; use self::attempt::Layer; pub use outcome::Outcome;\n\
         pub const ATTEMPTS: &str = \"a\";\n",
    );
    write(
        "c/attempt.rs",
        "pub struct Layer; fn f() { let _ = super::ATTEMPTS; }\n",
    );
    write(
        "c/outcome.rs",
        "pub struct Outcome;\n#[cfg(test)] mod tests { use crate::attempt::Layer; }\n",
    );
    let found = crate_circles(&dir.path().join("c"), &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::attempt -> crate"), "{found:?}");
}
